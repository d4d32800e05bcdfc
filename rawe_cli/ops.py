"""One-shot operations on a running collective's Redis: inject proposals, read state."""

from __future__ import annotations

import time
import uuid
from typing import Any

from rawe_cli import codec
from rawe_cli.bus import Bus, connect
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.errors import RaweError
from rawe_cli.keys import Keys
from rawe_cli.models import Direction, Proposal
from rawe_cli.runtime import bus_secret
from rawe_cli.store import Store


async def inject(
    redis_url: str,
    keys: Keys,
    *,
    asset: str,
    direction: Direction,
    agent: str,
    size: float,
    expected_profit: float,
    narrative_id: str,
    count: int,
    register: bool,
) -> list[str]:
    """Publish `count` hand-made proposals exactly as an agent would; returns their ids."""
    client = await connect(redis_url)
    try:
        store = Store(client, keys)
        known = await store.agents()
        if agent not in known:
            if not register:
                names = ", ".join(sorted(known)) or "none (start `rawe agents` first)"
                raise RaweError(f"agent {agent!r} is not registered (registered: {names}); "
                                "pass --register to add it")
            await store.register_agents([AgentRecord(agent, "manual")])
        # Stamp with the collective's event time when it runs ahead of the wall clock.
        event_time = float((await store.portfolio()).get("event_time", 0.0))
        now = max(time.time(), event_time)
        secret = bus_secret()
        batch = []
        ids = []
        for _ in range(count):
            p = Proposal(
                id=f"i-{uuid.uuid4().hex[:16]}", agent=agent, asset=asset,
                direction=direction, size=size, expected_profit=expected_profit,
                risk_score=0.5, narrative_id=narrative_id, signal_type="manual",
                timestamp=now,
            )
            codec.decode_proposal(codec.encode_proposal(p), now)  # validate as the engine will
            batch.append(codec.encode_proposal(p, secret))
            ids.append(p.id)
        await Bus(client, keys).add_many(keys.proposals, batch)
        return ids
    finally:
        await client.aclose()


async def read_agents(redis_url: str, keys: Keys) -> list[dict[str, Any]]:
    client = await connect(redis_url)
    try:
        records = await Store(client, keys).agents()
        return [records[n].to_dict() for n in sorted(records)]
    finally:
        await client.aclose()


async def read_decisions(redis_url: str, keys: Keys, limit: int | None) -> list[dict[str, Any]]:
    """The ledger, newest first."""
    client = await connect(redis_url)
    try:
        return [e.to_dict() for e in await Store(client, keys).ledger(limit)]
    finally:
        await client.aclose()
