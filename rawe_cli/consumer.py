"""The consensus side of the bus: read proposals, apply them, persist, then ack.

Acknowledgement follows the vote's life, so the stream's pending list holds exactly the
votes still alive in the engine's windows:

* a rejected message is dead-lettered (with the reason) and acked;
* a duplicate, expired or unknown-agent proposal is acked at once (the unknown one is also
  dead-lettered);
* an accepted proposal stays pending until a decision consumes it or its window expires,
  and is acked only after the decision (or nothing) has been saved.

So a crash loses no vote: a restarted engine reclaims the pending entries (XAUTOCLAIM) and
counts them again; a decision already in the ledger has the same deterministic id and is
never executed twice.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from rawe_cli import codec
from rawe_cli.bus import Bus, Entry
from rawe_cli.collective import Collective
from rawe_cli.core import consensus as cs
from rawe_cli.errors import CodecError, RaweError
from rawe_cli.keys import CONSENSUS_GROUP
from rawe_cli.models import Decision
from rawe_cli.store import Store


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
        fence: int | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        group: str = CONSENSUS_GROUP,
        refresh_agents: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.col = collective
        self.consumer = consumer
        self.secret = secret
        self.fence = fence
        self.on_decision = on_decision
        self.group = group
        self.refresh_agents = refresh_agents  # reload the registry before refusing an agent
        self.stream = bus.keys.proposals
        self.stats = ConsumerStats()
        self._live: dict[str, str] = {}  # proposal id -> entry id, while the vote lives
        self._expiries: list[tuple[float, str]] = []  # (expiry, proposal id)

    async def start(self) -> None:
        await self.bus.ensure_group(self.stream, self.group)

    async def reclaim(self, now: float) -> int:
        """Take over every pending entry (a previous engine's live votes) and apply them."""
        entries = await self.bus.reclaim(self.stream, self.group, self.consumer, 0)
        self.stats.reclaimed += len(entries)
        await self.apply(entries, now)
        return len(entries)

    async def claim_stale(self, now: float, min_idle_ms: int) -> int:
        """Take over entries another consumer read and left idle (a deposed engine's)."""
        entries = await self.bus.claim_idle(self.stream, self.group, self.consumer, min_idle_ms)
        self.stats.reclaimed += len(entries)
        await self.apply(entries, now)
        return len(entries)

    async def poll(self, now: float | Callable[[], float], *, block_ms: int | None = None,
                   count: int = 500) -> int:
        """Read and apply one batch. `now` may be a clock, read when the batch arrives: a
        blocking read must not stamp its decisions with the time it started waiting."""
        entries = await self.bus.read(self.stream, self.group, self.consumer, count=count,
                                      block_ms=block_ms)
        await self.apply(entries, now() if callable(now) else now)
        return len(entries)

    async def drain(self, now: float) -> int:
        """Read until the stream has nothing new (no blocking)."""
        total = 0
        while True:
            n = await self.poll(now)
            total += n
            if n == 0:
                return total

    async def apply(self, entries: list[Entry], now: float) -> None:
        """Apply entries, save, then ack what no longer needs to stay pending."""
        to_ack: list[str] = []
        dead: list[tuple[str, dict[str, str], str]] = []
        decisions: list[Decision] = []
        for entry_id, fields in entries:
            self.stats.read += 1
            try:
                proposal = codec.decode_proposal(fields, now=now, secret=self.secret)
                status, decision = self.col.on_proposal(proposal, now)
                if status == cs.UNKNOWN_AGENT and self.refresh_agents is not None:
                    await self.refresh_agents()
                    status, decision = self.col.on_proposal(proposal, now)
            except CodecError as exc:
                dead.append((entry_id, fields, str(exc)))
                to_ack.append(entry_id)
                continue
            except RaweError:
                raise  # the user must act (e.g. broker keys rejected): stop, state is saved
            except Exception as exc:  # a bug must not wedge the stream
                # Left pending, this entry would stop every engine that reclaims it.
                dead.append((entry_id, fields, f"internal error: {type(exc).__name__}: {exc}"))
                to_ack.append(entry_id)
                continue
            if status == cs.UNKNOWN_AGENT:
                dead.append((entry_id, fields, f"agent {proposal.agent!r} is not registered"))
                to_ack.append(entry_id)
                continue
            if status == cs.DUPLICATE or status == cs.EXPIRED:
                if status == cs.DUPLICATE:
                    self.stats.duplicates += 1
                else:
                    self.stats.expired += 1
                if self._live.get(proposal.id) != entry_id:
                    to_ack.append(entry_id)
                continue
            self.stats.accepted += 1
            replaced = self.col.engine.replaced  # the agent's older vote on the asset, if any
            if replaced is not None:
                eid = self._live.pop(replaced.id, None)
                if eid is not None:
                    to_ack.append(eid)
            self._live[proposal.id] = entry_id
            heapq.heappush(self._expiries, (proposal.timestamp + self.col.engine.window,
                                            proposal.id))
            if decision is not None:  # decided or suppressed: its votes are consumed
                if status == cs.DECIDED:
                    decisions.append(decision)
                for pid in (*decision.proposal_ids, *decision.opponent_proposal_ids):
                    eid = self._live.pop(pid, None)
                    if eid is not None:
                        to_ack.append(eid)
        to_ack.extend(self._expired(now))
        for entry_id, fields, reason in dead:
            await self.bus.dead_letter(self.stream, entry_id, fields, reason, now)
            self.stats.dead_lettered += 1
            key = reason.split(":")[0]
            self.stats.reasons[key] = self.stats.reasons.get(key, 0) + 1
        # The state and the acks of what it records go in one atomic, fenced write.
        # A batch that was read is always checked against the fence: an engine deposed
        # while it had nothing to write must learn it now, not keep reading.
        await self.store.save(self.col, self.fence, (self.stream, self.group, to_ack),
                              lazy_votes=True, verify=bool(entries))
        self.stats.decisions += len(decisions)
        if self.on_decision is not None:
            for d in decisions:
                self.on_decision(d)

    def _expired(self, now: float) -> list[str]:
        out: list[str] = []
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, pid = heapq.heappop(heap)
            eid = self._live.pop(pid, None)
            if eid is not None:
                out.append(eid)
        return out

    async def expire(self, now: float) -> None:
        """Save the state, with the acks of entries whose votes have expired."""
        await self.store.save(self.col, self.fence, (self.stream, self.group,
                                                     self._expired(now)))
