"""Durable state in Redis: agent records, the decision ledger, open positions, the portfolio.

Writes of the consensus engine are fenced: `save` runs as one Lua script that first checks
the fencing token and then applies every write (and the acks of the proposals whose effect
it records) atomically, so an engine that has lost its lease can never record an order or a
fill after its successor started (it gets `Fenced` and stands by).
"""

from __future__ import annotations

import json
from typing import Any

from rawe_cli import codec
from rawe_cli.bus import Command, chunked, fenced_write
from rawe_cli.collective import Collective, LedgerEntry
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.keys import Keys
from rawe_cli.models import Position


class Store:
    def __init__(self, client: Any, keys: Keys) -> None:
        self.r = client
        self.keys = keys

    # -- reads ------------------------------------------------------------------------------

    async def agents(self) -> dict[str, AgentRecord]:
        raw = await self.r.hgetall(self.keys.agents)
        return {name: AgentRecord.from_dict(json.loads(v)) for name, v in raw.items()}

    async def ledger(self, limit: int | None = None) -> list[LedgerEntry]:
        """Decisions, newest first."""
        end = -1 if limit is None else limit - 1
        ids = await self.r.zrevrange(self.keys.decision_index, 0, end)
        if not ids:
            return []
        raws = await self.r.hmget(self.keys.decisions, ids)
        return [codec.ledger_from_json(r) for r in raws if r]

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

    # -- agents registration (by the agents processes) --------------------------------------

    async def register_agents(self, records: list[AgentRecord]) -> None:
        """Add agents that are not known yet; a known agent keeps its record (and weight)."""
        async with self.r.pipeline(transaction=False) as pipe:
            for rec in records:
                pipe.hsetnx(self.keys.agents, rec.name, json.dumps(rec.to_dict()))
            await pipe.execute()

    # -- the engine's writes ----------------------------------------------------------------

    async def save(self, col: Collective, fence: int | None = None,
                   acks: tuple[str, str, list[str]] | None = None, *,
                   lazy_votes: bool = False, verify: bool = False) -> None:
        """Write what changed in `col` (its `dirty` sets) and ack `acks` (stream, group,
        entry ids), atomically and in one round trip, then clear the dirty sets.

        With `fence`, nothing is written unless the stored fencing token still equals it
        (raises Fenced); with `verify` the token is checked even when nothing changed. With
        `lazy_votes`, agents whose only change is a vote counter wait for a later save (the
        hot path saves every batch; counters need not).
        """
        dirty = col.dirty
        k = self.keys
        commands: list[Command] = []
        names = dirty.agents if lazy_votes else dirty.agents | dirty.votes
        # One command per hash (not per field): at full load a save carries hundreds of
        # decisions, and each command costs a round of packing and parsing.
        agents = [w for name in names if (rec := col.records.get(name)) is not None
                  for w in (name, json.dumps(rec.to_dict()))]
        commands += chunked("HSET", k.agents, agents)
        if dirty.decisions:
            entries = [col.ledger[did] for did in dirty.decisions]
            commands += chunked("HSET", k.decisions, [
                w for e in entries for w in (e.decision.id, codec.ledger_to_json(e))])
            commands += chunked("ZADD", k.decision_index, [
                w for e in entries for w in (repr(e.decision.timestamp), e.decision.id)])
        held = col.portfolio.positions
        gone = [asset for asset in dirty.positions if asset not in held]
        kept = [w for asset in dirty.positions if asset in held
                for w in (asset, codec.position_to_json(held[asset]))]
        commands += chunked("HDEL", k.positions, gone)
        commands += chunked("HSET", k.positions, kept)
        pf = col.portfolio
        if dirty.portfolio or dirty.positions or dirty.marks:
            commands.append(("HSET", k.portfolio,
                             "initial_cash", repr(pf.initial_cash),
                             "cash", repr(pf.cash),
                             "realized_pnl", repr(pf.realized),
                             "fees", repr(pf.fees),
                             "closed_positions", str(pf.closed_count),
                             "equity", repr(pf.equity()),
                             "unrealized_pnl", repr(pf.unrealized()),
                             "event_time", repr(col.event_time)))
        if dirty.marks and pf.marks:
            commands += chunked("HSET", k.marks,
                                [w for sym, p in pf.marks.items() for w in (sym, repr(p))])
        if acks is not None and acks[2]:
            stream, group, ids = acks
            commands += [("XACK", stream, group, *c[2:]) for c in chunked("IDS", "", ids)]
        await fenced_write(self.r, k.fence, fence, commands, verify=verify)
        votes = dirty.votes - names if lazy_votes else set()
        dirty.clear()
        dirty.votes.update(votes)

    async def restore(self, col: Collective) -> dict[str, int]:
        """Load a previous engine's state into a fresh collective; returns what was loaded."""
        records = await self.agents()
        for name, rec in records.items():
            if name in col.records:
                col.records[name] = rec
                rec.weight = col.scheme.weight(rec, col.regime)
                col.engine.set_weight(name, rec.weight)
            else:
                col.add_agent(rec)
        for entry in await self.ledger():
            col.ledger[entry.decision.id] = entry
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
        col.dirty.clear()
        return {"agents": len(records), "decisions": len(col.ledger),
                "positions": len(positions)}
