"""The consensus engine: weighted votes per asset inside a window of event time.

Rules (README, "Consensus"):

* Only registered agents vote. An agent has at most one live vote per asset: a newer
  proposal from it on the same asset replaces the older one.
* A vote lives `window` seconds of event time from its proposal's timestamp.
* Each side's sum is the sum of its voters' *current* weights: when a weight changes, the
  live votes of that agent are re-weighted at once.
* When the larger side reaches the threshold (absolute, or a share of all registered
  agents' weight) and is strictly larger than the other side, the collective decides.
  Equal sums are a tie: no trade, the votes stay.
* A decision consumes every live vote on its asset (both sides).
* While the collective holds the asset in the decided direction, no new trade: the votes
  are consumed and the decision is reported as suppressed. An opposite decision is returned
  like any other; the runtime flattens the held position with it (see runtime).
* Size is the weighted mean of the winning side's sizes; horizon, stop-loss and
  take-profit are weighted means too.

Work per proposal is constant (amortised): running sums per asset and side, a heap of
expiries per asset, votes consumed once. Nothing rescans other assets or held proposals.
Pure: `now` is passed in.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from dataclasses import dataclass

from rawe_cli.models import Decision, Direction, Proposal

ACCEPTED = "accepted"
DECIDED = "decided"
SUPPRESSED = "suppressed"  # consensus for a direction already held
DUPLICATE = "duplicate"
EXPIRED = "expired"
UNKNOWN_AGENT = "unknown_agent"

_EPS = 1e-9
_LONG = Direction.LONG


class _Live:
    __slots__ = ("proposal", "weight")

    def __init__(self, proposal: Proposal, weight: float) -> None:
        self.proposal = proposal
        self.weight = weight


class _Book:
    """One asset's window."""

    __slots__ = ("expiries", "long_n", "long_w", "short_n", "short_w", "votes")

    def __init__(self) -> None:
        self.votes: dict[str, _Live] = {}  # agent -> live vote
        self.expiries: list[tuple[float, str, str]] = []  # (expiry, proposal id, agent)
        self.long_w = 0.0
        self.short_w = 0.0
        self.long_n = 0
        self.short_n = 0

    def add(self, live: _Live) -> None:
        if live.proposal.direction is _LONG:
            self.long_w += live.weight
            self.long_n += 1
        else:
            self.short_w += live.weight
            self.short_n += 1

    def remove(self, live: _Live) -> None:
        if live.proposal.direction is _LONG:
            self.long_n -= 1
            self.long_w = self.long_w - live.weight if self.long_n else 0.0
        else:
            self.short_n -= 1
            self.short_w = self.short_w - live.weight if self.short_n else 0.0


@dataclass(frozen=True, slots=True)
class Tally:
    asset: str
    long_weight: float
    short_weight: float
    long_votes: int
    short_votes: int


def decision_id(asset: str, direction: Direction, proposal_ids: tuple[str, ...]) -> str:
    """Deterministic: the same proposals always make the same decision id."""
    key = "|".join((asset, direction.value, *sorted(proposal_ids)))
    return "d-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


class ConsensusEngine:
    def __init__(
        self,
        *,
        threshold: float = 3.0,
        threshold_share: float | None = None,
        window: float = 10.0,
        seen_retention: float | None = None,
    ) -> None:
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        if threshold_share is not None and not 0 < threshold_share <= 1:
            raise ValueError("threshold_share must be in (0, 1]")
        if window <= 0:
            raise ValueError("window must be > 0")
        self.threshold = threshold
        self.threshold_share = threshold_share
        self.window = window
        self._books: dict[str, _Book] = {}
        self._weights: dict[str, float] = {}
        self._total_weight = 0.0
        self._agent_assets: dict[str, set[str]] = {}
        self._holdings: dict[str, Direction] = {}
        # Proposal ids seen recently, so a redelivered proposal never counts twice.
        self._seen: set[str] = set()
        self._seen_order: deque[tuple[float, str]] = deque()
        self._seen_retention = seen_retention if seen_retention is not None else 30 * window
        self.stats = {ACCEPTED: 0, DECIDED: 0, SUPPRESSED: 0, DUPLICATE: 0, EXPIRED: 0,
                      UNKNOWN_AGENT: 0, "ties": 0}

    # -- agents and weights ----------------------------------------------------------------

    def register(self, agent: str, weight: float = 1.0) -> None:
        if weight <= 0:
            raise ValueError("a weight must be > 0")
        if agent in self._weights:
            self.set_weight(agent, weight)
            return
        self._weights[agent] = weight
        self._total_weight += weight
        self._agent_assets[agent] = set()

    def set_weight(self, agent: str, weight: float) -> None:
        """Change an agent's weight; its live votes count with the new weight at once."""
        if weight <= 0:
            raise ValueError("a weight must be > 0")
        old = self._weights[agent]
        self._weights[agent] = weight
        self._total_weight += weight - old
        for asset in self._agent_assets[agent]:
            book = self._books[asset]
            live = book.votes[agent]
            book.remove(live)
            live.weight = weight
            book.add(live)

    def weight(self, agent: str) -> float:
        return self._weights[agent]

    @property
    def agents(self) -> dict[str, float]:
        return dict(self._weights)

    @property
    def effective_threshold(self) -> float:
        if self.threshold_share is not None:
            return self.threshold_share * self._total_weight
        return self.threshold

    # -- holdings (told by the portfolio) ----------------------------------------------------

    def set_holding(self, asset: str, direction: Direction | None) -> None:
        if direction is None:
            self._holdings.pop(asset, None)
        else:
            self._holdings[asset] = direction

    # -- votes ------------------------------------------------------------------------------

    def _forget_seen(self, now: float) -> None:
        order = self._seen_order
        horizon = now - self._seen_retention
        while order and order[0][0] < horizon:
            self._seen.discard(order.popleft()[1])

    def _expire(self, asset: str, book: _Book, now: float) -> None:
        heap = book.expiries
        while heap and heap[0][0] <= now:
            _, pid, agent = heapq.heappop(heap)
            live = book.votes.get(agent)
            if live is not None and live.proposal.id == pid:
                del book.votes[agent]
                book.remove(live)
                self._agent_assets[agent].discard(asset)

    def submit(self, proposal: Proposal, now: float) -> tuple[str, Decision | None]:
        """Count one proposal at event time `now`; returns (status, decision or None)."""
        pid = proposal.id
        if pid in self._seen:
            self.stats[DUPLICATE] += 1
            return DUPLICATE, None
        agent = proposal.agent
        weight = self._weights.get(agent)
        if weight is None:
            self.stats[UNKNOWN_AGENT] += 1
            return UNKNOWN_AGENT, None
        expiry = proposal.timestamp + self.window
        if expiry <= now:
            self.stats[EXPIRED] += 1
            return EXPIRED, None
        self._seen.add(pid)
        self._seen_order.append((now, pid))
        if len(self._seen_order) & 1023 == 0:
            self._forget_seen(now)

        asset = proposal.asset
        book = self._books.get(asset)
        if book is None:
            book = self._books[asset] = _Book()
        if book.expiries and book.expiries[0][0] <= now:
            self._expire(asset, book, now)
        old = book.votes.get(agent)
        if old is not None:
            book.remove(old)
        live = _Live(proposal, weight)
        book.votes[agent] = live
        book.add(live)
        self._agent_assets[agent].add(asset)
        heapq.heappush(book.expiries, (expiry, pid, agent))
        self.stats[ACCEPTED] += 1
        return self._evaluate(asset, book, now)

    def _evaluate(self, asset: str, book: _Book, now: float) -> tuple[str, Decision | None]:
        long_w, short_w = book.long_w, book.short_w
        top = long_w if long_w > short_w else short_w
        if top + _EPS < self.effective_threshold:
            return ACCEPTED, None
        if abs(long_w - short_w) <= _EPS:
            self.stats["ties"] += 1
            return ACCEPTED, None
        direction = Direction.LONG if long_w > short_w else Direction.SHORT
        held = self._holdings.get(asset)
        decision = self._decide(asset, book, direction, now)
        if held is direction:
            self.stats[SUPPRESSED] += 1
            return SUPPRESSED, decision
        self.stats[DECIDED] += 1
        return DECIDED, decision

    def _decide(self, asset: str, book: _Book, direction: Direction, now: float) -> Decision:
        winners = [v for v in book.votes.values() if v.proposal.direction is direction]
        losers = sorted((v.proposal.agent, v.proposal.id) for v in book.votes.values()
                        if v.proposal.direction is not direction)
        winners.sort(key=lambda v: v.proposal.agent)
        total = sum(v.weight for v in winners)

        def mean(attr: str) -> float:
            return sum(v.weight * getattr(v.proposal, attr) for v in winners) / total

        pids = tuple(v.proposal.id for v in winners)
        decision = Decision(
            id=decision_id(asset, direction, pids),
            timestamp=now,
            asset=asset,
            direction=direction,
            size=mean("size"),
            long_weight=book.long_w,
            short_weight=book.short_w,
            threshold=self.effective_threshold,
            agents=tuple(v.proposal.agent for v in winners),
            opponents=tuple(a for a, _ in losers),
            proposal_ids=pids,
            horizon=mean("horizon"),
            stop_loss=mean("stop_loss"),
            take_profit=mean("take_profit"),
            weights=tuple(v.weight for v in winners),
            opponent_proposal_ids=tuple(pid for _, pid in losers),
        )
        for agent in book.votes:
            self._agent_assets[agent].discard(asset)
        book.votes.clear()
        book.expiries.clear()
        book.long_w = book.short_w = 0.0
        book.long_n = book.short_n = 0
        return decision

    def tally(self, asset: str, now: float) -> Tally:
        book = self._books.get(asset)
        if book is None:
            return Tally(asset, 0.0, 0.0, 0, 0)
        self._expire(asset, book, now)
        return Tally(asset, book.long_w, book.short_w, book.long_n, book.short_n)
