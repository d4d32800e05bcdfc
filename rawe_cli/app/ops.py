"""One-shot operations on a running collective's Redis: inject proposals, read state."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rawe_cli.app.runtime import bus_secret
from rawe_cli.bus import codec
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.store import Store, shard_layout
from rawe_cli.bus.streams import Bus, connect, is_cluster_url
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.errors import RaweError
from rawe_cli.models import Direction, Proposal


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
    shards: int = 0,
) -> list[str]:
    """Publish `count` hand-made proposals exactly as an agent would; returns their ids.
    Sharded (`shards`, else the count recorded in Redis), to the asset's shard."""
    client = await connect(redis_url)
    try:
        keys = (await shard_layout(client, keys.namespace, shards,
                                   cluster=is_cluster_url(redis_url))).for_asset(asset)
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


def _warn(line: str) -> None:
    import sys

    sys.stderr.write(f"rawe: warning: {line}\n")


async def read_agents(redis_url: str, keys: Keys,
                      warn: Callable[[str], None] = _warn,
                      shards: int = 0) -> list[dict[str, Any]]:
    """Every readable agent record; an unreadable one is skipped with a warning.

    Sharded: wins, losses, P&L and last update over every shard (the collective's
    tallies); the weight is the mean of the shards' weights (each shard weighs its agents
    with its own learned scores; `shard_weights` lists them), votes the sum."""
    client = await connect(redis_url)
    try:
        keys = await shard_layout(client, keys.namespace, shards,
                                  cluster=is_cluster_url(redis_url))
        store = Store(client, keys)
        records = await store.agents()
        for name, (reason, _) in sorted(store.bad_agents.items()):
            warn(f"agent record {name!r} is unreadable ({reason}); skipped")
        rows = [records[n].to_dict() for n in sorted(records)]
        if keys.sharded:
            per_shard = [await Store(client, k).agents() for k in keys.all_shards()]
            for row in rows:
                own = [got[row["name"]] for got in per_shard if row["name"] in got]
                row["shard_weights"] = [r.weight for r in own]
                row["weight"] = sum(r.weight for r in own) / len(own) if own else 1.0
                row["votes"] = sum(r.votes for r in own)
        return rows
    finally:
        await client.aclose()


async def read_decisions(redis_url: str, keys: Keys, limit: int | None,
                         archive_path: Path | None = None,
                         warn: Callable[[str], None] = _warn,
                         shards: int = 0) -> list[dict[str, Any]]:
    """The ledger, newest first; with `archive_path`, the archived decisions too.
    Sharded: every shard's ledger, merged (each row says its `shard`)."""
    client = await connect(redis_url)
    try:
        keys = await shard_layout(client, keys.namespace, shards,
                                  cluster=is_cluster_url(redis_url))
        live: list[dict[str, Any]] = []
        for k in keys.all_shards():
            store = Store(client, k)
            for e in await store.ledger(limit):
                row = e.to_dict()
                if k.sharded:
                    row["shard"] = k.shard
                live.append(row)
            for did, reason in sorted(store.bad_decisions.items()):
                warn(f"decision {did!r} is unreadable ({reason}); skipped")
        if keys.sharded:
            live.sort(key=lambda d: (d.get("timestamp") or 0, d["id"]), reverse=True)
            live = live if limit is None else live[:limit]
    finally:
        await client.aclose()
    if archive_path is None:
        return live
    from rawe_cli.bus import archive
    ids = {d["id"] for d in live}
    rows = live + [d for d in archive.read(archive_path) if d["id"] not in ids]
    rows.sort(key=lambda d: (d.get("timestamp") or 0, d["id"]), reverse=True)
    return rows if limit is None else rows[:limit]
