"""Durable state in Redis: agent records, the decision ledger, open positions, the portfolio,
the proposal ids already counted.

Writes of the consensus engine are fenced: `save` runs as one Lua script that first checks
the fencing token (counter and epoch) and then applies every write (with the acks of the
proposals whose effect it records, and the dead letters of those it refused) atomically, so
an engine that has lost its lease can never record an order or a fill after its successor
started (it gets `Fenced` and stands by), and a dead letter is written exactly once.

A Redis that came back empty is told apart by the state marker (`keys.marker`): the engine
that still holds the state writes all of it back with `rewrite`, atomically and only while
the marker is absent.

Sharded (docs/sharding.md), each shard's engine keeps its own agent records (weights, learned
scores, votes) in its own slot, agents register in the collective's registry, and realized
outcomes reach the collective's tallies exactly once: a close adds its decision id to the
shard's outbox in the same fenced write that records it; `flush_outcomes` then adds the
outcome to the tallies with one script on the collective's slot that also records the id
(a second flush of the same id adds nothing), and only then takes it out of the outbox. A
crash between the two steps leaves the id in the outbox, and the next flush finishes it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from rawe_cli.bus import codec
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.streams import (
    Command,
    Token,
    chunked,
    fenced_write,
    write_if_empty,
    xadd_command,
)
from rawe_cli.collective import CLOSED, Collective, Dirty, LedgerEntry
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.errors import CodecError, RaweError
from rawe_cli.models import Position
from rawe_cli.shards import outcome_increments

RESTORE_RECENT = 500  # final decisions a restore loads (with every open one)
TRIM_PER_SAVE = 1000  # seen ids past their window dropped per save, at most


SEEN_BUCKET = 10.0  # seconds of window ends per hash of seen ids (Keys.seen_bucket)


class SeenIds:
    """Proposal ids a write records as counted, as the write sends them: per bucket of
    window ends (`int(end // SEEN_BUCKET)`), the flat pairs (proposal id, entry id it was
    counted from, ...). A batch's proposals fall into one or two buckets; nothing is
    allocated per proposal to record it."""

    __slots__ = ("groups",)

    def __init__(self) -> None:
        self.groups: dict[int, list[str]] = {}

    def group(self, bucket: int) -> list[str]:
        """The pairs of one bucket, to extend."""
        got = self.groups.get(bucket)
        if got is None:
            got = self.groups[bucket] = []
        return got

    def add(self, proposal_id: str, entry_id: str, end: float) -> None:
        self.group(int(end // SEEN_BUCKET)).extend((proposal_id, entry_id))

    def extend(self, other: SeenIds) -> None:
        for bucket, pairs in other.groups.items():
            self.group(bucket).extend(pairs)

    def __len__(self) -> int:
        return sum(len(p) for p in self.groups.values()) // 2

    def wire(self, keys: Keys) -> list[tuple[str, str, list[str]]]:
        """(bucket key, last window end it may hold, pairs) per bucket, for the write."""
        return [(keys.seen_bucket(b), repr((b + 1) * SEEN_BUCKET), pairs)
                for b, pairs in self.groups.items() if pairs]

OPEN_SENTINEL = "~"  # a member of the open-decisions set that is no decision id
TALLY_FIELDS = ("wins", "losses", "pnl", "updated")
# Add closed positions' outcomes to the agents' tallies, each decision once. KEYS: tally,
# applied (zset). ARGV: now, drop-applied-before, then per outcome: id, updated, n, and n
# pairs (field, increment); `pnl:` fields are floats, the others integers.
_ADD_OUTCOMES = """
local i = 3
local added = 0
while i <= #ARGV do
  local id, updated, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local fresh = redis.call('ZADD', KEYS[2], 'NX', ARGV[1], id) == 1
  local j = i + 3
  for _ = 1, n do
    if fresh then
      local field = ARGV[j]
      if string.sub(field, 1, 4) == 'pnl:' then
        redis.call('HINCRBYFLOAT', KEYS[1], field, ARGV[j + 1])
      else
        redis.call('HINCRBY', KEYS[1], field, ARGV[j + 1])
        local name = string.sub(field, string.find(field, ':', 1, true) + 1)
        local seen = tonumber(redis.call('HGET', KEYS[1], 'updated:' .. name) or '0')
        if tonumber(updated) > seen then
          redis.call('HSET', KEYS[1], 'updated:' .. name, updated)
        end
      end
    end
    j = j + 2
  end
  if fresh then added = added + 1 end
  i = j
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2])
return added
"""


@dataclass(slots=True)
class Write:
    """A prepared fenced write (`Store.prepare`): its words, and what it takes off the
    collective's dirty sets."""

    col: Collective
    fence: Token | None
    commands: list[Command]
    seen: list[tuple[str, str, list[str]]]
    raw: list[Command]
    verify: bool
    dirty: Dirty


class Store:
    def __init__(self, client: Any, keys: Keys) -> None:
        self.r = client
        self.keys = keys
        self.bad_agents: dict[str, tuple[str, str]] = {}  # name -> (reason, raw record)
        self.bad_decisions: dict[str, str] = {}  # id -> reason

    # -- reads ------------------------------------------------------------------------------

    async def agents(self) -> dict[str, AgentRecord]:
        """Every readable agent record. An unreadable one (not JSON, no name, negative wins,
        ...) is left out and listed in `bad_agents` with the reason: one bad record must
        not stop the engine or `rawe weights`.

        Sharded: every agent of the registry, with this shard's own record where it has one
        (weights, learned scores, votes), and wins, losses, P&L and last update from the
        collective's tallies (every shard's outcomes)."""
        k = self.keys
        raw = await self.r.hgetall(k.registry)
        own = await self.r.hgetall(k.agents) if k.sharded and k.shard is not None else {}
        good: dict[str, AgentRecord] = {}
        self.bad_agents = {}
        for name, value in raw.items():
            try:
                good[name] = codec.agent_from_json(name, value)
            except CodecError as exc:
                self.bad_agents[name] = (str(exc), value)
                continue
            if name in own:
                with contextlib.suppress(CodecError):  # a bad own copy: the registry's
                    good[name] = codec.agent_from_json(name, own[name])
        if k.sharded:
            apply_tallies(good, await self.tallies())
        return good

    async def agent(self, name: str) -> AgentRecord | None:
        """One agent's record (None if it is not registered or unreadable)."""
        k = self.keys
        raw = await self.r.hget(k.registry, name)
        if raw is None:
            return None
        try:
            rec = codec.agent_from_json(name, raw)
        except CodecError as exc:
            self.bad_agents[name] = (str(exc), raw)
            return None
        if k.sharded:
            if k.shard is not None and (own := await self.r.hget(k.agents, name)):
                with contextlib.suppress(CodecError):
                    rec = codec.agent_from_json(name, own)
            fields = [f"{f}:{name}" for f in TALLY_FIELDS]
            got = await self.r.hmget(k.tally, fields)
            apply_tallies({name: rec}, {f: v for f, v in zip(fields, got, strict=True) if v})
        return rec

    async def tallies(self) -> dict[str, str]:
        """Sharded: the collective's outcome tallies (`wins:<name>` -> count, ...)."""
        return await self.r.hgetall(self.keys.tally)

    # -- outcomes of closed positions, to the collective's tallies (sharded) ---------------

    async def flush_outcomes(self, now: float, keep_seconds: float) -> int:
        """Add the outcomes in this shard's outbox to the collective's tallies, each decision
        once, then take them out of the outbox. Returns how many were added now (an id
        already added, by a flush that crashed before it emptied the outbox, adds nothing).
        Ids the tallies recorded more than `keep_seconds` ago are forgotten."""
        k = self.keys
        ids = sorted(await self.r.smembers(k.outbox))
        if not ids:
            return 0
        args: list[str] = [repr(now), repr(now - keep_seconds)]
        for did, raw in zip(ids, await self.r.hmget(k.decisions, ids), strict=True):
            if not raw:
                continue  # archived (or gone) before it was flushed: nothing to add
            try:
                entry = codec.ledger_from_json(raw)
            except (ValueError, KeyError, TypeError):
                continue
            if entry.pnl is None:
                continue
            d = entry.decision
            inc = outcome_increments(d.agents, d.weights, d.opponents, entry.pnl)
            args += [did, repr(entry.closed_at or d.timestamp), str(len(inc))]
            for fld, value in inc.items():
                args += [fld, repr(value) if fld.startswith("pnl:") else str(int(value))]
        added = 0
        if len(args) > 2:
            added = int(await self.r.eval(_ADD_OUTCOMES, 2, k.tally, k.tally_applied, *args))
        await self.r.srem(k.outbox, *ids)
        return added

    async def ledger(self, limit: int | None = None) -> list[LedgerEntry]:
        """Decisions, newest first (an unreadable entry is skipped, see `bad_decisions`)."""
        end = -1 if limit is None else limit - 1
        ids = await self.r.zrevrange(self.keys.decision_index, 0, end)
        return await self._entries(ids)

    async def _entries(self, ids: list[str]) -> list[LedgerEntry]:
        if not ids:
            return []
        raws = await self.r.hmget(self.keys.decisions, ids)
        out = []
        for did, raw in zip(ids, raws, strict=True):
            if not raw:
                continue
            try:
                out.append(codec.ledger_from_json(raw))
            except (ValueError, KeyError, TypeError) as exc:
                self.bad_decisions[did] = f"{type(exc).__name__}: {exc}"
        return out

    async def decision_count(self) -> int:
        return int(await self.r.zcard(self.keys.decision_index))

    async def positions(self) -> dict[str, Position]:
        raw = await self.r.hgetall(self.keys.positions)
        return {asset: codec.position_from_json(v) for asset, v in raw.items()}

    async def portfolio(self) -> dict[str, float]:
        raw = await self.r.hgetall(self.keys.portfolio)
        return {k: float(v) for k, v in raw.items()}

    async def marks(self) -> dict[str, float]:
        raw = await self.r.hgetall(self.keys.marks)
        return {k: float(v) for k, v in raw.items()}

    async def fence(self) -> int:
        return int(await self.r.get(self.keys.fence) or 0)

    async def marker(self) -> str | None:
        return await self.r.get(self.keys.marker)

    async def seen(self) -> dict[str, tuple[str, float]]:
        """Proposal id -> (entry id it was counted from, end of its window: the last end its
        bucket may hold, at most SEEN_BUCKET later than its own)."""
        k = self.keys
        out: dict[str, tuple[str, float]] = {}
        for key, end in await self.r.zrange(k.seen_buckets, 0, -1, withscores=True):
            for pid, eid in (await self.r.hgetall(key)).items():
                out[pid] = (eid, float(end))
        # written before the buckets (an engine of an earlier version)
        entries = await self.r.hgetall(k.seen_proposals)
        if entries:
            expiries = dict(await self.r.zrange(k.seen_expiry, 0, -1, withscores=True))
            for pid, eid in entries.items():
                out.setdefault(pid, (eid, float(expiries.get(pid, 0.0))))
        return out

    async def seen_entries(self, proposal_ids: list[str]) -> dict[str, str]:
        """The entry id each of these proposal ids was counted from (if it was)."""
        if not proposal_ids:
            return {}
        k = self.keys
        out: dict[str, str] = {}
        for key in [*await self.r.zrange(k.seen_buckets, 0, -1), k.seen_proposals]:
            got = await self.r.hmget(key, proposal_ids)
            out.update((pid, eid) for pid, eid in zip(proposal_ids, got, strict=True) if eid)
        return out

    async def persistence(self) -> tuple[bool | None, str]:
        """(does Redis keep its data across a restart?, one line saying how)."""
        import redis.exceptions as rex

        try:
            aof = (await self.r.config_get("appendonly")).get("appendonly", "")
            save = (await self.r.config_get("save")).get("save", "")
        except rex.ResponseError as exc:
            return None, f"unknown (CONFIG GET refused: {str(exc).splitlines()[0]})"
        if aof == "yes":
            return True, "AOF on (appendonly yes): the state survives a Redis restart"
        if save:
            return False, (f"RDB snapshots only (save '{save}'), no AOF: a Redis restart "
                           "loses the writes since the last snapshot; start redis-server "
                           "with --appendonly yes for live use")
        return False, ("NONE (appendonly no, no RDB snapshots): a Redis restart loses "
                       "everything; start redis-server with --appendonly yes for live use")

    async def old_decisions(self, cutoff: float, limit: int) -> list[LedgerEntry]:
        """Final decisions stamped before `cutoff`, oldest first (at most `limit`)."""
        k = self.keys
        skip = int(await self.r.scard(k.open_decisions))
        ids = await self.r.zrangebyscore(k.decision_index, "-inf", repr(cutoff), start=0,
                                         num=limit + skip)
        if not ids:
            return []
        open_ids = set(await self.r.smembers(k.open_decisions))
        ids = [i for i in ids if i not in open_ids][:limit]  # (the sentinel is no id)
        return [e for e in await self._entries(ids) if e.final]

    # -- agents registration (by the agents processes) --------------------------------------

    async def register_agents(self, records: list[AgentRecord]) -> None:
        """Add agents that are not known yet; a known agent keeps its record (and weight)."""
        async with self.r.pipeline(transaction=False) as pipe:
            for rec in records:
                pipe.hsetnx(self.keys.registry, rec.name, codec.agent_to_json(rec))
            await pipe.execute()

    # -- the engine's writes ----------------------------------------------------------------

    def _state_commands(self, col: Collective, *, everything: bool = False,
                        lazy_votes: bool = False) -> list[Command]:
        """The writes of what changed in `col` (its dirty sets), or of everything it holds."""
        dirty = col.dirty
        k = self.keys
        commands: list[Command] = []
        if everything:
            names: set[str] = set(col.records)
        else:
            names = dirty.agents if lazy_votes else dirty.agents | dirty.votes
        # One command per hash (not per field): at full load a save carries hundreds of
        # decisions, and each command costs a round of packing and parsing.
        agents = [w for name in names if (rec := col.records.get(name)) is not None
                  for w in (name, codec.agent_to_json(rec))]
        commands += chunked("HSET", k.agents, agents)
        ids = col.ledger if everything else dirty.decisions
        entries = [col.ledger[did] for did in ids if did in col.ledger]
        if entries:
            commands += chunked("HSET", k.decisions, [
                w for e in entries for w in (e.decision.id, codec.ledger_to_json(e))])
            commands += chunked("ZADD", k.decision_index, [
                w for e in entries for w in (repr(e.decision.timestamp), e.decision.id)])
            still = [e.decision.id for e in entries if not e.final]
            done = [e.decision.id for e in entries if e.final]
            # OPEN_SENTINEL keeps the set in existence: it says the ledger has one
            commands += chunked("SADD", k.open_decisions, [OPEN_SENTINEL, *still])
            commands += chunked("SREM", k.open_decisions, done)
            if k.sharded:  # outcomes for the collective's tallies (flush_outcomes)
                commands += chunked("SADD", k.outbox, [e.decision.id for e in entries
                                                       if e.status == CLOSED])
        held = col.portfolio.positions
        touched = set(held) if everything else dirty.positions
        gone = [asset for asset in touched if asset not in held]
        kept = [w for asset in touched if asset in held
                for w in (asset, codec.position_to_json(held[asset]))]
        commands += chunked("HDEL", k.positions, gone)
        commands += chunked("HSET", k.positions, kept)
        pf = col.portfolio
        if everything or dirty.portfolio or dirty.positions or dirty.marks:
            commands.append(("HSET", k.portfolio,
                             "initial_cash", repr(pf.initial_cash),
                             "cash", repr(pf.cash),
                             "realized_pnl", repr(pf.realized),
                             "fees", repr(pf.fees),
                             "closed_positions", str(pf.closed_count),
                             "equity", repr(pf.equity()),
                             "unrealized_pnl", repr(pf.unrealized()),
                             "event_time", repr(col.event_time)))
        if (everything or dirty.marks) and pf.marks:
            commands += chunked("HSET", k.marks,
                                [w for sym, p in pf.marks.items() for w in (sym, repr(p))])
        return commands

    def _trim_commands(self, trim_before: float | None) -> list[Command]:
        """Drop the buckets of seen ids whose windows all ended before `trim_before` (and
        such ids of the format before the buckets). The seen ids themselves are written by
        the fenced write's script, from the pairs it checks."""
        if trim_before is None:
            return []
        k = self.keys
        return [("RAWE.TRIM", k.seen_buckets, repr(trim_before), str(TRIM_PER_SAVE),
                 k.seen_proposals, k.seen_expiry)]

    def _seen_writes(self, seen: SeenIds) -> list[Command]:
        """The seen ids as plain commands (a rewrite: nothing to check them against)."""
        commands: list[Command] = []
        for key, end, pairs in seen.wire(self.keys):
            commands += chunked("HSET", key, pairs)
            commands.append(("ZADD", self.keys.seen_buckets, end, key))
        return commands

    async def save(self, col: Collective, fence: Token | None = None,
                   acks: tuple[str, str, list[str]] | None = None, *,
                   seen: SeenIds | None = None,
                   dead: list[dict[str, str]] = (),  # type: ignore[assignment]
                   trim_before: float | None = None,
                   lazy_votes: bool = False, verify: bool = False) -> None:
        """Write what changed in `col` (its `dirty` sets), record the proposal ids `seen`
        (SeenIds), write the dead letters `dead` and ack `acks`
        (stream, group, entry ids), atomically and in one round trip.

        With `fence`, nothing is written unless the stored token still equals it (raises
        Fenced, or RedisLost when Redis lost the state); a seen id already counted from
        another entry raises StateDiverged, and nothing is written. With `verify` the token
        is checked even when nothing changed. With `lazy_votes`, agents whose only change is
        a vote counter wait for a later save (the hot path saves every batch; counters need
        not). With `trim_before`, seen ids whose window ended before it are dropped.
        """
        await self.send(self.prepare(col, fence, acks, seen=seen, dead=dead,
                                     trim_before=trim_before, lazy_votes=lazy_votes,
                                     verify=verify))

    def prepare(self, col: Collective, fence: Token | None = None,
                acks: tuple[str, str, list[str]] | None = None, *,
                seen: SeenIds | None = None,
                dead: list[dict[str, str]] = (),  # type: ignore[assignment]
                trim_before: float | None = None,
                lazy_votes: bool = False, verify: bool = False) -> Write:
        """`save`'s first half, synchronous: the write of what changed in `col` up to now,
        whose dirty sets are then cleared (`send` puts them back if the write fails). The
        collective may change before `send` runs: the write holds its own words."""
        dirty = col.dirty
        commands = self._state_commands(col, lazy_votes=lazy_votes)
        # Ledger entries (JSON texts, ~600 bytes each) travel as arguments: inside the JSON
        # body every quote of theirs is escaped, and unescaping cost Redis more than the
        # whole HSET from arguments (benchmarks/README.md).
        ledger = self.keys.decisions
        raw = [c for c in commands if c[0] == "HSET" and c[1] == ledger]
        if raw:
            commands = [c for c in commands if not (c[0] == "HSET" and c[1] == ledger)]
        commands += self._trim_commands(trim_before)
        if acks is not None and acks[2]:
            stream, group, ids = acks
            commands += [("XACK", stream, group, *c[2:]) for c in chunked("IDS", "", ids)]
        taken = Dirty(dirty.agents, dirty.votes, dirty.decisions, dirty.positions,
                      dirty.portfolio, dirty.marks)
        votes = dirty.votes - (dirty.agents if lazy_votes else dirty.agents | dirty.votes)
        col.dirty = Dirty(votes=votes)
        taken.votes -= votes
        raw += [xadd_command(self.keys.dead_letter, d) for d in dead]
        return Write(col, fence, commands, seen.wire(self.keys) if seen else [], raw, verify,
                     taken)

    async def send(self, write: Write) -> None:
        """`save`'s second half: the prepared write, atomically and fenced. If it does not
        reach Redis (or is refused), what it held is marked dirty again."""
        try:
            await fenced_write(self.r, self.keys, write.fence, write.commands,
                               seen=write.seen, raw=write.raw, verify=write.verify)
        except BaseException:
            write.col.dirty.merge(write.dirty)
            raise

    async def forget_decisions(self, fence: Token | None, ids: list[str]) -> None:
        """Remove archived decisions from the ledger (fenced)."""
        k = self.keys
        await fenced_write(self.r, self.keys, fence, [*chunked("HDEL", k.decisions, ids),
                                                      *chunked("ZREM", k.decision_index, ids),
                                                      *chunked("SREM", k.open_decisions, ids)])

    async def rewrite(self, col: Collective, marker: str, owner: str, ttl_ms: int,
                      epoch: str, seen: dict[str, float]) -> tuple[str, str]:
        """Write everything `col` holds (and the seen ids) into a Redis that lost the state,
        only while the state marker is absent; then set the marker and take the lease if it
        is free. See `bus.write_if_empty` for the outcomes."""
        commands = self._state_commands(col, everything=True)
        ids = SeenIds()
        for pid, exp in seen.items():
            ids.add(pid, "-", exp)
        commands += self._seen_writes(ids)
        outcome = await write_if_empty(self.r, self.keys, marker, owner, ttl_ms, epoch,
                                       commands)
        if outcome[0] != "taken":
            col.dirty.clear()
        return outcome

    async def restore(self, col: Collective) -> dict[str, int]:
        """Load a previous engine's state into a fresh collective; returns what was loaded.

        Open decisions and the newest RESTORE_RECENT others are loaded, not the whole ledger:
        a restore takes the same time after a week as after a minute.
        """
        records = await self.agents()
        for name, rec in records.items():
            if name in col.records:
                col.records[name] = rec
                rec.weight = col.scheme.weight(rec, col.regime)
                col.engine.set_weight(name, rec.weight)
            else:
                col.add_agent(rec)
        k = self.keys
        if await self.r.exists(k.open_decisions) or not await self.r.exists(k.decisions):
            open_ids = list(await self.r.smembers(k.open_decisions) - {OPEN_SENTINEL})
            for entry in await self._entries(open_ids):
                col.ledger[entry.decision.id] = entry
            for entry in await self.ledger(RESTORE_RECENT):
                col.ledger.setdefault(entry.decision.id, entry)
            migrate: list[str] = []
        else:  # a ledger written before the open set existed: read it whole, once
            for entry in await self.ledger():
                col.ledger[entry.decision.id] = entry
            migrate = [did for did, e in col.ledger.items() if not e.final]
        col.decisions_total = await self.decision_count()
        positions = await self.positions()
        pf = col.portfolio
        for asset, pos in positions.items():
            pf.positions[asset] = pos
            col.engine.set_holding(asset, pos.direction)
        stored = await self.portfolio()
        if stored:
            pf.cash = stored.get("cash", pf.cash)
            pf.realized = stored.get("realized_pnl", pf.realized)
            pf.fees = stored.get("fees", pf.fees)
            pf.closed_count = int(stored.get("closed_positions", 0))
            pf.initial_cash = stored.get("initial_cash", pf.initial_cash)
        for symbol, price in (await self.marks()).items():
            pf.mark(symbol, price)
        seen = await self.seen()
        for pid, (_, expiry) in seen.items():
            col.engine.remember(pid, expiry)
        col.dirty.clear()
        col.dirty.decisions.update(migrate)  # the next save lists them in the open set
        return {"agents": len(records), "decisions": col.decisions_total,
                "positions": len(positions), "seen": len(seen)}


def apply_tallies(records: dict[str, AgentRecord], tally: dict[str, str]) -> None:
    """Sharded: set the records' wins, losses, P&L and last update to the collective's
    tallies; a count the tallies do not have yet keeps the record's own."""
    for name, rec in records.items():
        rec.wins = int(tally.get(f"wins:{name}", rec.wins))
        rec.losses = int(tally.get(f"losses:{name}", rec.losses))
        rec.pnl = float(tally.get(f"pnl:{name}", rec.pnl))
        rec.updated = max(rec.updated, float(tally.get(f"updated:{name}", 0.0)))


async def shard_layout(client: Any, namespace: str, configured: int, *, cluster: bool = False,
                       engine: bool = False) -> Keys:
    """The collective's key layout under `namespace`: unsharded, or N shards.

    The shard count is part of the collective: the first process that knows it (an engine's
    `--shard K/N`, or a publisher's `shards` setting / RAWE_SHARDS) records it in Redis
    (`{<ns>}:shards`, SET NX) and every other process checks it: a different N is refused
    (one line), never silently published to streams no engine reads. A process that was told
    nothing takes the recorded count (`engine`: an engine without --shard refuses a sharded
    namespace instead). A namespace that holds an unsharded collective (its state marker
    `<ns>:state-marker`) is never sharded over it.
    """
    legacy = Keys(namespace)
    record_key = Keys(namespace, 1, 0).shard_count
    recorded = await client.get(record_key)
    where = f"Redis records it in {record_key}"
    if recorded is not None and not (recorded.isdigit() and 1 <= int(recorded) <= 256):
        raise RaweError(f"{record_key} holds {recorded[:40]!r}, not a shard count")
    if configured:
        if recorded is None and await client.exists(legacy.marker):
            raise RaweError(f"namespace {namespace!r} holds an unsharded collective "
                            f"({legacy.marker} exists): run it without shards, or start the "
                            "sharded one under another --namespace")
        if recorded is None:
            await client.set(record_key, str(configured), nx=True)
            recorded = await client.get(record_key)
        if recorded is not None and recorded != str(configured):
            raise RaweError(f"namespace {namespace!r} has {recorded} shards ({where}), but "
                            f"this process was told {configured}: use the same N everywhere "
                            "(--shard K/N, the settings' shards, RAWE_SHARDS)")
        return Keys(namespace, configured)
    if recorded is not None:
        if engine:
            raise RaweError(f"namespace {namespace!r} is sharded into {recorded} ({where}): "
                            f"start each engine with --shard K/{recorded} (K = 0 to "
                            f"{int(recorded) - 1})")
        return Keys(namespace, int(recorded))
    if cluster:
        raise RaweError("a Redis Cluster needs the sharded key layout (hash tags): start the "
                        "engines with --shard K/N (--shard 0/1 for one), or set shards")
    return legacy
