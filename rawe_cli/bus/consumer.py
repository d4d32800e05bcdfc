"""The consensus side of the bus: read proposals, apply them, persist, then ack.

Acknowledgement follows the vote's life, so the stream's pending list holds exactly the
votes still alive in the engine's windows:

* a rejected message is dead-lettered (with the reason) and acked, in the same fenced
  write: a dead letter is written exactly once;
* a duplicate, expired or unknown-agent proposal is acked at once (the unknown one is also
  dead-lettered);
* an accepted proposal stays pending until a decision consumes it or its window expires,
  and is acked only after the decision (or nothing) has been saved.

So a crash loses no vote: a restarted engine reclaims the pending entries (XAUTOCLAIM) and
counts them again; a decision already in the ledger has the same deterministic id and is
never executed twice.

A proposal id counts once, across restarts too: every id a write counts is recorded in Redis
(`<ns>:seen:<bucket>`, with the entry id it came from, dropped after its window) in the same
fenced write, which refuses an id already counted from another entry; a restored engine
loads them.
A reclaimed entry whose id was counted from that very entry is a live vote, not a duplicate.

Orders are written ahead: the collective keeps the orders it decides (`Collective.outbox`);
they are sent only after the write that records their decisions, and the fills are saved by
a second write. An engine that lost its lease fails the first write and sends nothing.

`rawe consensus` reads through `poll_ahead`: a pipeline of one read ahead and one write on
its way, with the same order of effects (see there).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rawe_cli.bus import codec
from rawe_cli.bus.keys import CONSENSUS_GROUP
from rawe_cli.bus.store import SEEN_BUCKET, SeenIds, Store, Write
from rawe_cli.bus.streams import Bus, Entry, Token, dead_letter_fields
from rawe_cli.collective import Collective, Dirty
from rawe_cli.core import consensus as cs
from rawe_cli.errors import CodecError, RaweError
from rawe_cli.models import Decision

_COUNTED = (cs.ACCEPTED, cs.DECIDED, cs.SUPPRESSED)  # statuses that mark an id as seen
MISS_TTL = 1.0  # an agent looked up and not found is not looked up again for this long
LOOKUPS_PER_SECOND = 200  # at most, for agents not known yet (a flood costs no more)
# XREADGROUP COUNT of the serving loop (`poll_ahead`): a larger batch spreads each round
# trip, script call and write over more proposals; a smaller one would wait less at low
# rates, but there the batches are small anyway.
BATCH = 2000


class _Prepared(NamedTuple):
    """A write made ready (`_prepare`) with what it carries, to keep if it fails."""

    write: Write
    acks: list[str]
    seen: SeenIds
    dead: list[dict[str, str]]
    orders: list[str]  # client order ids it records, sent once it is saved


@dataclass(slots=True)
class ConsumerStats:
    read: int = 0
    accepted: int = 0
    decisions: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    expired: int = 0
    reclaimed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class ProposalConsumer:
    def __init__(
        self,
        bus: Bus,
        store: Store,
        collective: Collective,
        *,
        consumer: str,
        secret: str | None = None,
        fence: Token | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        group: str = CONSENSUS_GROUP,
        lookup_agent: Callable[[str], Awaitable[bool]] | None = None,
        max_ahead: float = codec.MAX_FUTURE_SECONDS,
        misrouted: Callable[[str], str] | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.col = collective
        self.consumer = consumer
        self.secret = secret
        self.fence = fence
        self.on_decision = on_decision
        self.group = group
        # Look an agent up in the registry before refusing it (registered since the last
        # look): True if it was found and added.
        self.lookup_agent = lookup_agent
        self._missing: dict[str, float] = {}  # agent -> monotonic time it was not found
        self._budget = (0.0, 0)  # (second, lookups in it)
        self.max_ahead = max_ahead  # the clock tolerance for a proposal's timestamp
        # Sharded: why an asset is not this shard's ("" when it is): dead-lettered.
        self.misrouted = misrouted
        self.stream = bus.keys.proposals
        self.dead: list[dict[str, str]] = []  # dead letters for the next write
        self._unsaved_acks: list[str] = []  # of a write that did not reach Redis
        self._unsaved_seen = SeenIds()
        self._unreported: list[Decision] = []  # decided in a write that did not reach Redis
        self._trimmed = -math.inf  # event time of the last trim of the seen ids
        self.stats = ConsumerStats()
        # Proposal id -> entry id while the vote lives, in the order the votes came (their
        # ends are the engine's: `engine.expiry(id)`).
        self._live: dict[str, str] = {}
        # Pipelined (`poll_ahead`): the next batch's read, asked before this one is applied,
        # and the last batch's write, still on its way while the next batch is applied.
        self._next_read: asyncio.Task[tuple[list[Entry], float]] | None = None
        self._inflight: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.bus.ensure_group(self.stream, self.group)

    async def reclaim(self, now: float) -> int:
        """Take over every pending entry (a previous engine's live votes) and apply them."""
        entries = await self.bus.reclaim(self.stream, self.group, self.consumer, 0)
        self.stats.reclaimed += len(entries)
        await self.apply(entries, now, redelivered=True)
        return len(entries)

    async def claim_stale(self, now: float, min_idle_ms: int) -> int:
        """Take over entries another consumer read and left idle (a deposed engine's)."""
        entries = await self.bus.claim_idle(self.stream, self.group, self.consumer, min_idle_ms)
        self.stats.reclaimed += len(entries)
        await self.apply(entries, now, redelivered=True)
        return len(entries)

    async def poll(self, now: float | Callable[[], float], *, block_ms: int | None = None,
                   count: int = 500) -> int:
        """Read and apply one batch. `now` may be a clock, read when the batch arrives: a
        blocking read must not stamp its decisions with the time it started waiting."""
        entries = await self.bus.read(self.stream, self.group, self.consumer, count=count,
                                      block_ms=block_ms)
        await self.apply(entries, now() if callable(now) else now)
        return len(entries)

    async def poll_ahead(self, now: Callable[[], float], *, block_ms: int | None = None,
                         count: int = 500) -> int:
        """`poll`, pipelined for a loaded stream: the next batch is asked for before this one
        is applied (Redis answers while the engine works), and this batch's write is sent
        without waiting for it: Redis runs it while the engine applies the next batch, and
        its orders, fills and decision lines follow when it has been saved. At most one
        write is on its way, and every write (or `settle`) waits for the one before.

        The order of effects is `poll`'s: a batch's orders go out only after the write that
        records them; a write that fails leaves its acks, seen ids, dead letters and dirty
        state for the next one, and raises (at the next batch, `commit` or `settle`)."""
        task = self._next_read
        self._next_read = None
        if task is None:
            task = asyncio.ensure_future(self._read(count, block_ms, now))
        entries, arrived = await task
        if entries:  # under load: ask for the next batch now
            self._next_read = asyncio.ensure_future(self._read(count, block_ms, now))
            await asyncio.sleep(0)  # let it send the request before the CPU work begins
        await self.apply(entries, arrived, behind=True)
        return len(entries)

    async def _read(self, count: int, block_ms: int | None, now: Callable[[], float]
                    ) -> tuple[list[Entry], float]:
        entries = await self.bus.read(self.stream, self.group, self.consumer, count=count,
                                      block_ms=block_ms)
        return entries, now()  # a batch is stamped when it arrives

    async def settle(self) -> None:
        """Wait for the write on its way (raises what it raised)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def abandon(self) -> BaseException | None:
        """Stop the pipeline without applying anything more (Redis away, standing by): the
        read ahead is cancelled, and what it had read stays pending under this consumer
        (`recover_own` after an outage, or a reclaim at the next start, applies it); the
        write on its way is waited for. Returns what that write raised, if it failed (its
        acks, seen ids and state are kept for the next write)."""
        read, self._next_read = self._next_read, None
        if read is not None:
            read.cancel()
            await asyncio.wait({read})  # (raises nothing of the read's own)
            if not read.cancelled():
                read.exception()  # retrieved: a failed read-ahead is no news
        task, self._inflight = self._inflight, None
        if task is None:
            return None
        await asyncio.wait({task})
        return None if task.cancelled() else task.exception()

    async def finish_reads(self, now: float) -> None:
        """Apply the batch read ahead, if any, and wait for the writes (a clean stop)."""
        read, self._next_read = self._next_read, None
        try:
            if read is not None:
                entries, _ = await read
                await self.apply(entries, now)
        finally:
            await self.settle()

    async def recover_own(self, now: float) -> int:
        """After an outage that Redis survived with its data: apply the entries this consumer
        was delivered and never applied (a read ahead cancelled, or a reply lost with the
        connection). They are pending under this consumer, where nobody else claims them;
        the live votes and the entries whose acks wait for the next write are not
        re-applied."""
        known = set(self._live.values())
        known.update(self._unsaved_acks)
        entries = [e for e in await self.bus.own_pending(self.stream, self.group,
                                                           self.consumer)
                   if e[0] not in known]
        self.stats.reclaimed += len(entries)
        await self.apply(entries, now, redelivered=True)
        return len(entries)

    async def drain(self, now: float) -> int:
        """Read until the stream has nothing new (no blocking)."""
        total = 0
        while True:
            n = await self.poll(now)
            total += n
            if n == 0:
                return total

    async def _live_again(self, entries: list[Entry]) -> None:
        """Redelivered entries (reclaimed or claimed) whose proposal id was counted from
        that same entry are live votes of a previous engine: let them count again."""
        ids: dict[str, str] = {}
        for entry_id, fields in entries:
            try:
                ids[codec.decode_proposal(fields, secret=self.secret).id] = entry_id
            except CodecError:
                continue
        known = await self.store.seen_entries(list(ids))
        for pid, eid in known.items():
            if ids.get(pid) == eid:
                self.col.engine.unsee(pid)

    async def _lookup(self, agent: str) -> bool:
        """Is this agent registered after all? One HGET, not a reload of the registry; a
        name not found is not asked again for MISS_TTL, and at most LOOKUPS_PER_SECOND
        lookups are made (a flood of unknown names costs a dict lookup each)."""
        if self.lookup_agent is None:
            return False
        mono = time.monotonic()
        missed = self._missing.get(agent)
        if missed is not None and mono - missed < MISS_TTL:
            return False
        second, used = self._budget
        if int(mono) != second:
            second, used = int(mono), 0
            if len(self._missing) > 10_000:
                self._missing.clear()
        if used >= LOOKUPS_PER_SECOND:
            return False
        self._budget = (second, used + 1)
        if await self.lookup_agent(agent):
            self._missing.pop(agent, None)
            return True
        self._missing[agent] = mono
        return False

    def note_dead(self, source: str, entry_id: str, fields: dict[Any, Any], reason: str,
                  now: float) -> None:
        """A dead letter for the next write (market messages, bad state records)."""
        self.dead.append(dead_letter_fields(source, entry_id, fields, reason, now))
        self.stats.dead_lettered += 1
        key = reason.split(":")[0]
        self.stats.reasons[key] = self.stats.reasons.get(key, 0) + 1

    async def apply(self, entries: list[Entry], now: float, *, redelivered: bool = False,
                    behind: bool = False) -> None:
        """Apply a batch of entries in their order, then save it in one fenced write with the
        acks of what no longer needs to stay pending.

        Per entry the common path is: decode (one msgspec call: the Proposal Struct is the
        vote itself), count it (`engine.submit`), note its id and entry in flat lists. A
        proposal that refreshes a vote (the agent's newer proposal on the asset) allocates
        nothing else: no status object, no record of its own for the write or the acks.

        `behind` (see `poll_ahead`): send the write and return without waiting for it."""
        if redelivered and entries:
            await self._live_again(entries)
        to_ack: list[str] = []
        seen = SeenIds()
        bucket, pairs = -1, []  # the seen ids' bucket of the last counted one, its pairs
        decisions: list[Decision] = []
        col = self.col
        engine = col.engine
        live = self._live
        stats = self.stats
        decode = codec.decode_proposal
        on_proposal = col.on_proposal
        secret, max_ahead, misrouted = self.secret, self.max_ahead, self.misrouted
        counted = _COUNTED
        for entry_id, fields in entries:
            try:
                proposal = decode(fields, now, secret, max_ahead)
                if misrouted is not None and (why := misrouted(proposal.asset)):
                    raise CodecError(why)
                status, decision = on_proposal(proposal, now)
                if status == cs.UNKNOWN_AGENT and await self._lookup(proposal.agent):
                    status, decision = on_proposal(proposal, now)
            except CodecError as exc:
                self.note_dead(self.stream, entry_id, fields, str(exc), now)
                to_ack.append(entry_id)
                continue
            except RaweError:
                raise  # the user must act (e.g. broker keys rejected): stop, state is saved
            except Exception as exc:  # a bug must not wedge the stream
                # Left pending, this entry would stop every engine that reclaims it.
                self.note_dead(self.stream, entry_id, fields,
                               f"internal error: {type(exc).__name__}: {exc}", now)
                to_ack.append(entry_id)
                continue
            if status in counted:
                pid = proposal.id
                if (b := int(engine.last_expiry // SEEN_BUCKET)) != bucket:
                    bucket, pairs = b, seen.group(b)
                pairs += (pid, entry_id)
                replaced = engine.replaced  # the agent's older vote on the asset, if any
                if replaced is not None:
                    eid = live.pop(replaced.id, None)
                    if eid is not None:
                        to_ack.append(eid)
                live[pid] = entry_id
                if decision is not None:  # decided or suppressed: its votes are consumed
                    if status == cs.DECIDED:
                        decisions.append(decision)
                    for consumed in (decision.proposal_ids, decision.opponent_proposal_ids):
                        for cpid in consumed:
                            eid = live.pop(cpid, None)
                            if eid is not None:
                                to_ack.append(eid)
            elif status == cs.UNKNOWN_AGENT:
                self.note_dead(self.stream, entry_id, fields,
                               f"agent {proposal.agent!r} is not registered", now)
                to_ack.append(entry_id)
            else:  # a duplicate, or expired on arrival
                if status == cs.DUPLICATE:
                    stats.duplicates += 1
                else:
                    stats.expired += 1
                if live.get(proposal.id) != entry_id:
                    to_ack.append(entry_id)
        stats.read += len(entries)
        stats.accepted += len(seen)
        to_ack.extend(self._expired(now))
        # The state, the seen ids, the dead letters and the acks of what it records go in
        # one atomic, fenced write. A batch that was read is always checked against the
        # fence: an engine deposed while it had nothing to write must learn it now.
        if not behind:
            try:
                await self.commit(now, to_ack, seen, verify=bool(entries))
            except BaseException:
                self._unreported += decisions  # told after the write that saves them
                raise
            self._report(decisions)
            return
        try:
            await self.settle()
        except BaseException:
            self._keep(to_ack, seen)
            self._unreported += decisions
            raise
        write = self._prepare(now, to_ack, seen, verify=bool(entries))
        self._inflight = asyncio.ensure_future(self._finish(write, now, decisions))

    def _report(self, decisions: list[Decision]) -> None:
        """Decisions whose write has been saved: counted, and told (`on_decision`)."""
        if self._unreported:
            decisions, self._unreported = [*self._unreported, *decisions], []
        self.stats.decisions += len(decisions)
        if self.on_decision is not None:
            for d in decisions:
                self.on_decision(d)

    def _keep(self, acks: list[str], seen: SeenIds | None) -> None:
        """Acks and seen ids of a write that was not sent: for the next one."""
        self._unsaved_acks += acks
        if seen:
            self._unsaved_seen.extend(seen)

    def _prepare(self, now: float, acks: list[str], seen: SeenIds | None, *,
                 verify: bool) -> _Prepared:
        """The fenced write of everything not saved yet, with the acks, seen ids and dead
        letters, and the orders it records (write-ahead: sent once it is saved)."""
        dead, self.dead = self.dead, []
        trim = None
        if now - self._trimmed >= 1.0 and (acks or seen or verify):  # at most once a second
            trim, self._trimmed = now, now
        acks = [*self._unsaved_acks, *acks]
        if self._unsaved_seen:
            self._unsaved_seen.extend(seen or SeenIds())
            seen = self._unsaved_seen
        seen = seen or SeenIds()
        self._unsaved_acks, self._unsaved_seen = [], SeenIds()
        write = self.store.prepare(self.col, self.fence, (self.stream, self.group, acks),
                                   seen=seen, dead=dead, trim_before=trim, lazy_votes=True,
                                   verify=verify)
        return _Prepared(write, acks, seen, dead, list(self.col.outbox))

    async def _send(self, prepared: _Prepared, now: float) -> None:
        write, acks, seen, dead, orders = prepared
        try:
            await self.store.send(write)
        except BaseException:
            # Not written (Redis unreachable): keep them for the write that follows.
            self.dead[:0] = dead
            self._keep(acks, seen)
            raise
        await self.send_orders(now, orders)

    async def _finish(self, prepared: _Prepared, now: float,
                      decisions: list[Decision]) -> None:
        try:
            await self._send(prepared, now)
        except BaseException:
            self._unreported += decisions
            raise
        self._report(decisions)

    async def commit(self, now: float, acks: list[str] = (),  # type: ignore[assignment]
                     seen: SeenIds | None = None, *, verify: bool = False) -> None:
        """Save (fenced) with the acks, seen ids and dead letters; then send the orders the
        saved state records (write-ahead) and save their fills. A write on its way
        (`poll_ahead`) is waited for first."""
        try:
            await self.settle()
        except BaseException:
            self._keep(list(acks), seen)
            raise
        await self._send(self._prepare(now, list(acks), seen, verify=verify), now)
        if self._unreported:
            self._report([])

    async def send_orders(self, now: float, orders: list[str] | None = None) -> None:
        """Send what the saved state records as decided and not sent (`orders`: those of
        one write, by client order id; None: all), then save the fills: only what sending
        changed. Pipelined, the next batch may already be applied in memory; its state must
        reach Redis only with its own seen ids and acks, in its own write."""
        col = self.col
        if not col.outbox or (orders is not None and not orders):
            return
        rest, col.dirty = col.dirty, Dirty()
        try:
            col.send_orders(now, orders)
            write = self.store.prepare(col, self.fence, lazy_votes=True)
        finally:
            col.dirty.merge(rest)
        await self.store.send(write)

    def _expired(self, now: float) -> list[str]:
        """Entries of votes whose window has ended, from the oldest vote on. The scan stops
        at the first live one: votes come roughly in the order of their ends, and a vote
        behind a later one (a late arrival) is acked when that one has ended (at most
        `clock_tolerance` + the window later): pending a little longer, never lost."""
        live = self._live
        end = self.col.engine.expiry
        gone: list[str] = []
        for pid in live:
            until = end(pid)
            if until is not None and until > now:
                break
            gone.append(pid)
        return [live.pop(pid) for pid in gone]

    async def expire(self, now: float) -> None:
        """Save the state, with the acks of entries whose votes have expired."""
        await self.commit(now, self._expired(now))
