"""A port of the seed's consensus algorithm, kept only as a yardstick for the benchmark.

The seed (the prototype RAWE grew from) holds every proposal it has received, and on EVERY
incoming message walks every asset and every held proposal: it drops the expired ones, adds
up the weights per asset and direction, and checks the threshold. Its work per message is
therefore proportional to (assets + held proposals), which is why its throughput collapses
as the number of assets grows (DESIGN.md: ~94,000/s at 10 assets, ~180/s at 10,000).

The voting rules are made to match `rawe_cli.core.consensus` (an agent's newest live
proposal on an asset is its vote; the larger side must reach the threshold and be strictly
larger; a decision consumes the asset's proposals) so that the benchmark can check that
both engines reach the same decisions on the same stream. Only the cost model is the
seed's. Not used by the application.
"""

from __future__ import annotations

from rawe_cli.models import Direction, Proposal

_EPS = 1e-9
_LONG = Direction.LONG


class SeedConsensus:
    def __init__(self, weights: dict[str, float], *, threshold: float = 3.0,
                 window: float = 10.0) -> None:
        self.weights = dict(weights)
        self.threshold = threshold
        self.window = window
        self.held: dict[str, list[Proposal]] = {}  # asset -> proposals, arrival order
        self.decisions: list[tuple[str, Direction, tuple[str, ...]]] = []

    def _scan(self, asset: str, props: list[Proposal], now: float) -> None:
        """The seed's per-asset step: expire, take each agent's newest vote, sum, check."""
        window = self.window
        live = [p for p in props if p.timestamp + window > now]
        if len(live) != len(props):
            props[:] = live
        if not live:
            return
        newest: dict[str, Proposal] = {}
        for p in live:  # arrival order: a later proposal from the same agent replaces
            newest[p.agent] = p
        long_w = short_w = 0.0
        weights = self.weights
        for p in newest.values():
            if p.direction is _LONG:
                long_w += weights[p.agent]
            else:
                short_w += weights[p.agent]
        top = long_w if long_w > short_w else short_w
        if top + _EPS < self.threshold or abs(long_w - short_w) <= _EPS:
            return
        direction = Direction.LONG if long_w > short_w else Direction.SHORT
        pids = tuple(sorted(p.id for p in newest.values() if p.direction is direction))
        self.decisions.append((asset, direction, pids))
        props.clear()

    def submit(self, proposal: Proposal, now: float) -> None:
        """The seed's cost model: hold the proposal, then rescan everything."""
        if proposal.agent not in self.weights or proposal.timestamp + self.window <= now:
            return
        self.held.setdefault(proposal.asset, []).append(proposal)
        for asset, props in self.held.items():
            self._scan(asset, props, now)

    def warm(self, proposal: Proposal, now: float) -> None:
        """Reach a steady state fast (not timed): same decisions, only the touched asset.

        Other assets can only lose votes by expiry between their own messages, and expired
        proposals are dropped by the next full scan, so the state a later `submit` sees
        holds the same live votes as after full rescans.
        """
        if proposal.agent not in self.weights or proposal.timestamp + self.window <= now:
            return
        props = self.held.setdefault(proposal.asset, [])
        props.append(proposal)
        self._scan(proposal.asset, props, now)

    @property
    def held_count(self) -> int:
        return sum(len(v) for v in self.held.values())
