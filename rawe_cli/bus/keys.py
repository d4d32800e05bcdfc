"""Every Redis key and stream name RAWE uses, under one namespace prefix."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "rawe"
CONSENSUS_GROUP = "consensus"


@dataclass(frozen=True, slots=True)
class Keys:
    namespace: str = DEFAULT_NAMESPACE

    def _k(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    @property
    def proposals(self) -> str:
        """Stream: proposals from agents (and `rawe inject-signal`)."""
        return self._k("proposals")

    @property
    def market(self) -> str:
        """Stream: bars and narrative events, published by whichever process owns the feed."""
        return self._k("market")

    @property
    def dead_letter(self) -> str:
        """Stream: messages that were rejected, with the reason."""
        return self._k("deadletter")

    @property
    def agents(self) -> str:
        """Hash: agent name -> JSON record (personality, weight, wins, losses, pnl, updated)."""
        return self._k("agents")

    @property
    def decisions(self) -> str:
        """Hash: decision id -> JSON ledger entry."""
        return self._k("decisions")

    @property
    def decision_index(self) -> str:
        """Sorted set: decision id scored by decision time."""
        return self._k("decisions:index")

    @property
    def positions(self) -> str:
        """Hash: asset -> JSON open position."""
        return self._k("positions")

    @property
    def portfolio(self) -> str:
        """Hash: cash, realized P&L, fees and other portfolio scalars."""
        return self._k("portfolio")

    @property
    def open_decisions(self) -> str:
        """Set: ids of decisions not final yet (pending or open): a restore reads these and
        the newest few, never the whole ledger."""
        return self._k("decisions:open")

    @property
    def seen_proposals(self) -> str:
        """Hash: proposal id -> stream entry id it was counted from, so a proposal id never
        counts twice, across restarts too (a redelivery of the same entry is not a
        duplicate: it is a live vote being reclaimed)."""
        return self._k("seen")

    @property
    def seen_expiry(self) -> str:
        """Sorted set: proposal id scored by the end of its window; ids past it are trimmed
        from `seen_proposals` (a proposal that old is refused as expired anyway)."""
        return self._k("seen:expiry")

    @property
    def marks(self) -> str:
        """Hash: symbol -> last price."""
        return self._k("marks")

    @property
    def lease(self) -> str:
        """String: the active consensus engine's lease (owner id), with a TTL."""
        return self._k("lease")

    @property
    def fence(self) -> str:
        """Counter: the fencing token, incremented at every lease acquisition."""
        return self._k("fence")

    @property
    def fence_epoch(self) -> str:
        """String: a random epoch written with every lease acquisition. A token is the pair
        (counter, epoch): after Redis restarts empty the counter starts at 1 again, the
        epoch never repeats, so a token from before the restart cannot pass."""
        return self._k("fence:epoch")

    @property
    def marker(self) -> str:
        """String: the collective's state marker, a random id written with its first state.
        Gone means Redis came back empty: an engine that knew it never starts from nothing."""
        return self._k("state-marker")

    @property
    def regime_weights(self) -> str:
        """Hash: 'regime|agent' -> weight, for the regime scheme."""
        return self._k("regime-weights")
