"""Crash windows and Redis restarts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.bus.codec import encode_proposal
from rawe_cli.bus.consumer import ProposalConsumer
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.lease import Lease
from rawe_cli.bus.store import Store
from rawe_cli.bus.streams import Bus, connect
from rawe_cli.collective import Collective
from rawe_cli.config import Settings
from rawe_cli.core.weighting import AgentRecord, WinRateScheme
from rawe_cli.errors import Fenced
from rawe_cli.models import Bar, Direction, Proposal
from tests.procs import Proc, rawe_json, take_over, wait_until
from tests.redis_server import RedisServer, needs_redis_server

T0 = 1_767_225_600.0


def proposal(agent: str, pid: str) -> Proposal:
    return Proposal(pid, agent, "AAPL", Direction.LONG, 0.1, 0.01, 0.2, "n", "manual", T0)


def engine(client, ns: str) -> tuple[Collective, ProposalConsumer, Store]:
    keys = Keys(ns)
    recs = {n: AgentRecord(n, n) for n in ("a", "b", "c")}
    col = Collective(Settings(namespace=ns, threshold=3.0, window=10.0), recs, WinRateScheme(),
                     PaperBroker())
    store = Store(client, keys)
    return col, ProposalConsumer(Bus(client, keys), store, col, consumer="c1"), store


async def crash_between_save_and_ack(url: str | None, ns: str) -> None:
    client = await connect(url)
    col, consumer, store = engine(client, ns)
    await consumer.start()
    col.on_bar(Bar(T0, "AAPL", 100, 100, 100, 100, 1))
    bus = Bus(client, Keys(ns))
    for agent in ("a", "b", "c"):
        await bus.add(Keys(ns).proposals, encode_proposal(proposal(agent, f"p-{agent}")))
    entries = await bus.read(Keys(ns).proposals, "consensus", "c1", block_ms=None)
    assert len(entries) == 3
    # The engine applies the batch and saves (order filled, decision recorded) ...
    for _, fields in entries:
        from rawe_cli.bus.codec import decode_proposal

        col.on_proposal(decode_proposal(fields), T0)
    await store.save(col)
    assert len(col.ledger) == 1
    # ... and dies before XACK. A new engine restores and reclaims:
    col2, consumer2, store2 = engine(client, ns)
    await store2.restore(col2)
    await consumer2.start()
    reclaimed = await consumer2.reclaim(T0 + 1)
    assert reclaimed == 3
    assert len(col2.ledger) == 1  # the same decision id: not executed twice
    assert len(col2.portfolio.positions) == 1
    assert col2.portfolio.cash == pytest.approx(col.portfolio.cash)
    assert await bus.pending_count(Keys(ns).proposals, "consensus") == 0
    await client.aclose()


def test_crash_between_order_and_ack_embedded():
    asyncio.run(crash_between_save_and_ack(None, "rawe"))


def test_crash_between_order_and_ack_real_redis(redis_url, namespace):
    asyncio.run(crash_between_save_and_ack(redis_url, namespace))


async def fenced_write(url: str, ns: str) -> None:
    client = await connect(url)
    col, _, store = engine(client, ns)
    first = await Lease(client, Keys(ns), "a", 200).try_acquire()
    col.mark_all_dirty()
    await store.save(col, fence=first.token)  # current token: accepted
    col.mark_all_dirty()
    await take_over(client, Keys(ns), "b", first.marker)  # once its lease has run out
    with pytest.raises(Fenced):
        await store.save(col, fence=first.token)
    await client.aclose()


def test_a_fenced_engine_cannot_write(redis_url, namespace):
    asyncio.run(fenced_write(redis_url, namespace))


@needs_redis_server
def test_processes_survive_a_redis_restart(tmp_path: Path):
    """Deterministic: every step waits for what it needs (the engine's rewrite, the agents'
    registration, a new decision), with generous limits; nothing sleeps and hopes."""
    server = RedisServer(tmp_path)
    server.start()
    env = {"RAWE_REDIS_URL": server.url, "RAWE_NAMESPACE": "restart"}
    settings = tmp_path / "s.yaml"
    settings.write_text("tick_seconds: 1.0\nthreshold: 2.0\nwindow: 10\nclock_tolerance: 1d\n")
    pfile = tmp_path / "p.yaml"
    from tests.test_processes import FAST_PERSONALITIES

    pfile.write_text(FAST_PERSONALITIES)
    cons = Proc(["consensus", "--no-dashboard", "-c", str(settings)], tmp_path / "cons.log",
                env)
    agents = Proc(["agents", "-n", "3", "-p", str(pfile), "-c", str(settings), "--speed", "8",
                   "-q"], tmp_path / "agents.log", env)

    def ledger() -> int:
        return len(rawe_json("decisions", "--json", "--limit", "1000", env=env))

    try:
        cons.wait_for("active:")
        wait_until(ledger, timeout=60)
        server.stop()
        time.sleep(1.0)  # the fault itself: Redis is away this long
        server.start()
        # The engine noticed (a connection error, or NOGROUP if its retry hid the outage),
        # wrote its state back into the empty Redis, and the agents registered again.
        cons.wait_for("wrote this engine's state back", timeout=60)
        agents.wait_for("registering 3 agents again", timeout=60)
        assert "Redis unreachable" in cons.text() or "Redis lost its data" in cons.text()
        before = wait_until(ledger, timeout=30)
        wait_until(lambda: ledger() > before, timeout=90)  # and trading carries on
        assert len(rawe_json("weights", "--json", env=env)) == 3
        assert cons.p.poll() is None and agents.p.poll() is None
    finally:
        agents.stop()
        cons.stop()
        if server.up():
            server.stop()
