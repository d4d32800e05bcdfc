"""Durable state in Redis: agent records, the decision ledger, open positions, the portfolio.

Writes of the consensus engine are fenced: `save` runs in a WATCHed transaction that first
checks the fencing token, so an engine that has lost its lease can never record an order or
a fill after its successor started (it gets `Fenced` and stops).
"""

from __future__ import annotations

import json
from typing import Any

from rawe_cli import codec
from rawe_cli.collective import Collective, LedgerEntry
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.keys import Keys
from rawe_cli.models import Position


class Fenced(Exception):
    """Another engine holds a newer fencing token: this one must stop writing."""


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

    async def save(self, col: Collective, fence: int | None = None) -> None:
        """Write what changed in `col` (its `dirty` sets), atomically, then clear them.

        With `fence`, the write happens only if the stored fencing token still equals it.
        """
        dirty = col.dirty
        if not (dirty.agents or dirty.decisions or dirty.positions or dirty.portfolio):
            return
        import redis.exceptions as rex

        k = self.keys
        async with self.r.pipeline(transaction=True) as pipe:
            try:
                if fence is not None:
                    await pipe.watch(k.fence)
                    current = int(await pipe.get(k.fence) or 0)
                    if current != fence:
                        raise Fenced(f"fencing token is {current}, this engine holds {fence}")
                pipe.multi()
                # One command per hash (not per field): at full load a save carries hundreds
                # of decisions, and each command costs a round of packing and parsing.
                agents = {name: json.dumps(rec.to_dict()) for name in dirty.agents
                          if (rec := col.records.get(name)) is not None}
                if agents:
                    pipe.hset(k.agents, mapping=agents)
                if dirty.decisions:
                    entries = [col.ledger[did] for did in dirty.decisions]
                    pipe.hset(k.decisions, mapping={e.decision.id: codec.ledger_to_json(e)
                                                    for e in entries})
                    pipe.zadd(k.decision_index, {e.decision.id: e.decision.timestamp
                                                 for e in entries})
                held = col.portfolio.positions
                gone = [asset for asset in dirty.positions if asset not in held]
                kept = {asset: codec.position_to_json(held[asset]) for asset in dirty.positions
                        if asset in held}
                if gone:
                    pipe.hdel(k.positions, *gone)
                if kept:
                    pipe.hset(k.positions, mapping=kept)
                pf = col.portfolio
                pipe.hset(k.portfolio, mapping={
                    "initial_cash": repr(pf.initial_cash),
                    "cash": repr(pf.cash),
                    "realized_pnl": repr(pf.realized),
                    "fees": repr(pf.fees),
                    "closed_positions": str(pf.closed_count),
                    "equity": repr(pf.equity()),
                    "unrealized_pnl": repr(pf.unrealized()),
                    "event_time": repr(col.event_time),
                })
                if pf.marks:
                    pipe.hset(k.marks, mapping={s: repr(p) for s, p in pf.marks.items()})
                await pipe.execute()
            except rex.WatchError:
                raise Fenced("the fencing token changed during the write") from None
        dirty.clear()

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
