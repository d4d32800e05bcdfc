"""The consensus engine: weighted votes per asset inside a window of event time.

Rules (README, "Consensus"):

* Only registered agents vote. An agent has at most one live vote per asset: a newer
  proposal from it on the same asset replaces the older one.
* A vote lives `window` seconds of event time from its proposal's timestamp.
* Each side's sum is the sum of its voters' *current* weights: when a weight changes, the
  live votes of that agent count with the new weight from the next look at their asset on
  (submit and tally both look first).
* When the larger side reaches the threshold (absolute, or a share of all registered
  agents' weight) and is strictly larger than the other side, the collective decides.
  Equal sums are a tie: no trade, the votes stay.
* A decision consumes every live vote on its asset (both sides).
* While the collective holds the asset in the decided direction, no new trade: the votes
  are consumed and the decision is reported as suppressed. An opposite decision is returned
  like any other; the runtime flattens the held position with it (see runtime).
* Size is the weighted mean of the winning side's sizes; horizon, stop-loss and
  take-profit are weighted means too.
* A proposal id counts once: a redelivered id is reported as a duplicate. An id is
  remembered until its own window has passed (plus `seen_retention` seconds, 0 by
  default): after that a redelivery is refused as expired anyway, so the table holds about
  one window of ids, not the whole history. A proposal whose window has already passed when
  it arrives is reported expired; one from an unregistered agent is rejected. Neither marks
  its id as seen.
* A decision's id is a hash of its asset, direction and winning proposal ids: the same
  proposals make the same id in any arrival order (it becomes the order's client id).

Work per proposal is constant (amortised): running sums per asset and side, an expiry
queue per asset, votes consumed once. Nothing rescans other assets or held proposals.
Pure: `now` is passed in.

Hot-path notes (benchmarks/consensus_bench.py measures them): a live vote is the Proposal
itself, so nothing is allocated per vote; a weight change only bumps a weights version, and
a book whose sums were made with an older version recomputes them from its own votes (at
most one per agent) when next touched, so no per-agent index is kept per proposal; the
expiry queue is a small list read from a head index (not a deque, whose 64-slot blocks
would cost megabytes of cold memory at 10,000 assets) while an asset's timestamps arrive in
order, with a heap only for late (out-of-order) arrivals; expired votes leave in (expiry,
proposal id) order, exactly as from one heap, so the running sums see the same
floating-point operations in the same order; seen ids live in one insertion-ordered dict;
counters are plain ints behind the `stats` property.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from heapq import heappop, heappush
from operator import attrgetter

from rawe_cli.models import Decision, Direction, Proposal

ACCEPTED = "accepted"
DECIDED = "decided"
SUPPRESSED = "suppressed"  # consensus for a direction already held
DUPLICATE = "duplicate"
EXPIRED = "expired"
UNKNOWN_AGENT = "unknown_agent"

_EPS = 1e-9
_INF = float("inf")
_LONG = Direction.LONG
_SHORT = Direction.SHORT
# Results without a decision are shared tuples: nothing to allocate on the common path.
_ACCEPTED_NONE: tuple[str, Decision | None] = (ACCEPTED, None)
_DUPLICATE_NONE: tuple[str, Decision | None] = (DUPLICATE, None)
_EXPIRED_NONE: tuple[str, Decision | None] = (EXPIRED, None)
_UNKNOWN_NONE: tuple[str, Decision | None] = (UNKNOWN_AGENT, None)
_by_agent = attrgetter("agent")


class _Book:
    """One asset's window.

    `votes` maps agent -> its live Proposal. `fifo` holds proposals whose timestamps arrived
    in non-decreasing order (so it is sorted by expiry); a proposal older than the fifo's
    newest (`last_ts`) goes to `late`, a heap of (expiry, id, proposal). Both may hold stale
    entries (replaced or consumed votes); they are skipped when they come out. `next_expiry`
    is the smallest expiry in either (or +inf): one comparison says whether to expire.
    """

    __slots__ = ("fifo", "head", "last_ts", "late", "long_n", "long_w", "next_expiry",
                 "short_n", "short_w", "votes", "wver")

    def __init__(self) -> None:
        self.votes: dict[str, Proposal] = {}
        # A list read from `head` on (a deque would allocate a 64-slot block per asset: at
        # 10,000 assets that is megabytes of cold memory for a handful of votes each).
        self.fifo: list[Proposal] = []
        self.head = 0
        self.late: list[tuple[float, str, Proposal]] = []
        self.next_expiry = _INF
        self.last_ts = -_INF
        self.long_w = 0.0
        self.short_w = 0.0
        self.long_n = 0
        self.short_n = 0
        self.wver = 0  # the weights version its sums were computed with

    def add(self, direction: Direction, weight: float) -> None:
        if direction is _LONG:
            self.long_w += weight
            self.long_n += 1
        else:
            self.short_w += weight
            self.short_n += 1

    def remove(self, direction: Direction, weight: float) -> None:
        # Back to exactly 0.0 when a side empties: no drift survives an empty side.
        if direction is _LONG:
            self.long_n -= 1
            self.long_w = self.long_w - weight if self.long_n else 0.0
        else:
            self.short_n -= 1
            self.short_w = self.short_w - weight if self.short_n else 0.0


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
        self._threshold = threshold
        self._threshold_share = threshold_share
        self.window = window
        self._books: dict[str, _Book] = {}
        self._weights: dict[str, float] = {}
        self._total_weight = 0.0
        self._effective = 0.0
        # Bumped by every weight change; a book whose sums were made with an older version
        # recomputes them from its own votes when next touched (lazy re-weighing: a weight
        # change costs nothing per asset, and no per-agent index is kept per proposal).
        self._wversion = 0
        # The vote the last accepted proposal replaced (the same agent's older proposal on
        # the same asset), so a bus consumer can ack it; None when it replaced nothing.
        self.replaced: Proposal | None = None
        # The end of the window of the last proposal counted (the float the seen table holds).
        self.last_expiry = 0.0
        self._holdings: dict[str, Direction] = {}
        # Proposal id -> event time it was seen, in insertion order, so a redelivered
        # proposal never counts twice; an id is kept (with its expiry) until its window and
        # the retention have passed, when a redelivery would be refused as expired anyway.
        self._seen: dict[str, float] = {}
        self._seen_retention = seen_retention if seen_retention is not None else 0.0
        self._accepted = 0
        self._decided = self._suppressed = self._duplicate = 0
        self._expired = self._unknown = self._ties = 0
        self._update_threshold()

    # -- thresholds and counters -------------------------------------------------------------

    def _update_threshold(self) -> None:
        if self._threshold_share is not None:
            self._effective = self._threshold_share * self._total_weight
        else:
            self._effective = self._threshold

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = value
        self._update_threshold()

    @property
    def threshold_share(self) -> float | None:
        return self._threshold_share

    @threshold_share.setter
    def threshold_share(self, value: float | None) -> None:
        self._threshold_share = value
        self._update_threshold()

    @property
    def effective_threshold(self) -> float:
        return self._effective

    @property
    def stats(self) -> dict[str, int]:
        """Counters: proposals accepted (every vote taken, decided or not), decisions made,
        suppressed, duplicates, expired on arrival, unknown agents, ties."""
        return {ACCEPTED: self._accepted, DECIDED: self._decided,
                SUPPRESSED: self._suppressed, DUPLICATE: self._duplicate,
                EXPIRED: self._expired, UNKNOWN_AGENT: self._unknown, "ties": self._ties}

    # -- agents and weights ----------------------------------------------------------------

    def register(self, agent: str, weight: float = 1.0) -> None:
        if weight <= 0:
            raise ValueError("a weight must be > 0")
        if agent in self._weights:
            self.set_weight(agent, weight)
            return
        self._weights[agent] = weight
        self._total_weight += weight
        self._update_threshold()

    def set_weight(self, agent: str, weight: float) -> None:
        """Change an agent's weight; its live votes count with the new weight from the next
        look at their asset on (every submit and tally looks first)."""
        if weight <= 0:
            raise ValueError("a weight must be > 0")
        old = self._weights[agent]
        if weight == old:
            return
        self._weights[agent] = weight
        self._total_weight += weight - old
        self._update_threshold()
        self._wversion += 1

    def _resum(self, book: _Book) -> None:
        """Recompute a book's sums from its votes with the current weights."""
        weights = self._weights
        long_w = short_w = 0.0
        long_n = short_n = 0
        for agent, p in sorted(book.votes.items()):
            if p.direction is _LONG:
                long_w += weights[agent]
                long_n += 1
            else:
                short_w += weights[agent]
                short_n += 1
        book.long_w, book.short_w, book.long_n, book.short_n = long_w, short_w, long_n, short_n
        book.wver = self._wversion

    def weight(self, agent: str) -> float:
        return self._weights[agent]

    @property
    def agents(self) -> dict[str, float]:
        return dict(self._weights)

    # -- holdings (told by the portfolio) ----------------------------------------------------

    def set_holding(self, asset: str, direction: Direction | None) -> None:
        if direction is None:
            self._holdings.pop(asset, None)
        else:
            self._holdings[asset] = direction

    # -- votes ------------------------------------------------------------------------------

    def _forget_seen(self, now: float) -> None:
        seen = self._seen
        horizon = now - self._seen_retention
        old = []
        for pid, expiry in seen.items():  # insertion order: roughly oldest expiry first; an
            if expiry > horizon:  # id stuck behind a later one is only forgotten later
                break
            old.append(pid)
        for pid in old:
            del seen[pid]

    def _expire(self, asset: str, book: _Book, now: float) -> None:
        votes = book.votes
        window = self.window
        out: list[Proposal] = []
        fifo = book.fifo
        head = book.head
        n = len(fifo)
        while head < n:
            p = fifo[head]
            if p.timestamp + window > now:
                break
            head += 1
            if votes.get(p.agent) is p:
                out.append(p)
        if head == n:
            fifo.clear()
            head = 0
        elif head > 16 and 2 * head > n:
            del fifo[:head]
            head = 0
        book.head = head
        late = book.late
        while late and late[0][0] <= now:
            p = heappop(late)[2]
            if votes.get(p.agent) is p:
                out.append(p)
        if fifo:
            nxt = fifo[head].timestamp + window
        else:
            nxt = _INF
            book.last_ts = -_INF
        if late and late[0][0] < nxt:
            nxt = late[0][0]
        book.next_expiry = nxt
        if len(out) > 1:  # the order one heap of (expiry, id) would give
            out.sort(key=lambda p: (p.timestamp + window, p.id))
        weights = self._weights
        for p in out:
            agent = p.agent
            del votes[agent]
            book.remove(p.direction, weights[agent])

    def submit(self, proposal: Proposal, now: float) -> tuple[str, Decision | None]:
        """Count one proposal at event time `now`; returns (status, decision or None)."""
        pid = proposal.id
        seen = self._seen
        if pid in seen:
            self._duplicate += 1
            return _DUPLICATE_NONE
        agent = proposal.agent
        weight = self._weights.get(agent)
        if weight is None:
            self._unknown += 1
            return _UNKNOWN_NONE
        ts = proposal.timestamp
        expiry = ts + self.window
        if expiry <= now:
            self._expired += 1
            return _EXPIRED_NONE
        seen[pid] = self.last_expiry = expiry
        self._accepted += 1
        if len(seen) & 1023 == 0:
            self._forget_seen(now)

        asset = proposal.asset
        book = self._books.get(asset)
        if book is None:
            book = self._books[asset] = _Book()
            book.wver = self._wversion
        elif book.wver != self._wversion:
            self._resum(book)
        if book.next_expiry <= now:
            self._expire(asset, book, now)
        votes = book.votes
        old = self.replaced = votes.get(agent)
        if old is not None:  # the agent's newer proposal replaces its vote
            if old.direction is _LONG:
                book.long_n -= 1
                book.long_w = book.long_w - weight if book.long_n else 0.0
            else:
                book.short_n -= 1
                book.short_w = book.short_w - weight if book.short_n else 0.0
        votes[agent] = proposal
        if proposal.direction is _LONG:
            long_w = book.long_w = book.long_w + weight
            book.long_n += 1
            short_w = book.short_w
        else:
            short_w = book.short_w = book.short_w + weight
            book.short_n += 1
            long_w = book.long_w
        if ts >= book.last_ts:
            book.fifo.append(proposal)
            book.last_ts = ts
        else:
            heappush(book.late, (expiry, pid, proposal))
        if expiry < book.next_expiry:
            book.next_expiry = expiry

        top = long_w if long_w > short_w else short_w
        if top + _EPS < self._effective:
            return _ACCEPTED_NONE
        if abs(long_w - short_w) <= _EPS:
            self._ties += 1
            return _ACCEPTED_NONE
        direction = _LONG if long_w > short_w else _SHORT
        decision = self._decide(asset, book, direction, now)
        if self._holdings.get(asset) is direction:
            self._suppressed += 1
            return SUPPRESSED, decision
        self._decided += 1
        return DECIDED, decision

    def _decide(self, asset: str, book: _Book, direction: Direction, now: float) -> Decision:
        votes = book.votes
        winners: list[Proposal] = []
        losers: list[Proposal] = []
        for p in votes.values():
            (winners if p.direction is direction else losers).append(p)
        winners.sort(key=_by_agent)
        losers.sort(key=_by_agent)  # one vote per agent: agent order is (agent, id) order
        weights = self._weights
        # One pass over the winners (a list comprehension each cost a frame); the means are
        # still `sum` of the terms in agent order, as they always were.
        ws: list[float] = []
        agents: list[str] = []
        ids: list[str] = []
        sizes: list[float] = []
        horizons: list[float] = []
        stops: list[float] = []
        takes: list[float] = []
        for p in winners:
            w = weights[p.agent]
            ws.append(w)
            agents.append(p.agent)
            ids.append(p.id)
            sizes.append(w * p.size)
            horizons.append(w * p.horizon)
            stops.append(w * p.stop_loss)
            takes.append(w * p.take_profit)
        total = sum(ws)
        pids = tuple(ids)
        decision = Decision(  # positional, in the Struct's field order (faster than keywords)
            decision_id(asset, direction, pids),
            now,
            asset,
            direction,
            sum(sizes) / total,
            book.long_w,
            book.short_w,
            self._effective,
            tuple(agents),
            tuple([p.agent for p in losers]) if losers else (),
            pids,
            sum(horizons) / total,
            sum(stops) / total,
            sum(takes) / total,
            tuple(ws),
            tuple([p.id for p in losers]) if losers else (),
        )
        # Every vote is consumed: the book is freed (an asset seen once must not cost memory
        # for good); the next proposal on the asset starts a new one.
        del self._books[asset]
        return decision

    def sweep(self, now: float) -> int:
        """Expire every book's old votes and free the books left empty; returns how many
        were freed. Cost: one comparison per book without a due expiry."""
        empty = []
        for asset, book in self._books.items():
            if book.next_expiry <= now:
                self._expire(asset, book, now)
            if not book.votes:
                empty.append(asset)
        for asset in empty:
            del self._books[asset]
        if self._seen:
            self._forget_seen(now)
        return len(empty)

    @property
    def books(self) -> int:
        """Assets with live votes (a book each)."""
        return len(self._books)

    # -- seen proposal ids (persisted by the bus consumer) ---------------------------------

    def remember(self, proposal_id: str, expiry: float) -> None:
        """Mark an id as counted until `expiry` (restored from a previous engine's record)."""
        if proposal_id not in self._seen:
            self._seen[proposal_id] = expiry

    def unsee(self, proposal_id: str) -> None:
        """Forget an id, so that the same stream entry, redelivered because its vote was
        still live when the previous engine stopped, counts again."""
        self._seen.pop(proposal_id, None)

    def expiry(self, proposal_id: str) -> float | None:
        """The end of a counted id's window (None once it is forgotten, or never counted)."""
        return self._seen.get(proposal_id)

    def seen(self) -> dict[str, float]:
        """Every remembered id with the end of its window (a copy)."""
        return dict(self._seen)

    def tally(self, asset: str, now: float) -> Tally:
        book = self._books.get(asset)
        if book is None:
            return Tally(asset, 0.0, 0.0, 0, 0)
        if book.wver != self._wversion:
            self._resum(book)
        self._expire(asset, book, now)
        return Tally(asset, book.long_w, book.short_w, book.long_n, book.short_n)
