"""Issue 9: fencing that cannot repeat across a Redis restart, a Redis that came back empty
under an engine, and orders written ahead. The restart tests use their own redis-server."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from rawe_cli.app.services import ConsensusOptions, ConsensusService
from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.bus import codec
from rawe_cli.bus.consumer import ProposalConsumer
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.lease import Lease
from rawe_cli.bus.store import Store
from rawe_cli.bus.streams import Bus, connect
from rawe_cli.collective import Collective
from rawe_cli.config import Settings
from rawe_cli.core.weighting import AgentRecord, MajorityScheme
from rawe_cli.errors import Fenced, RedisLost
from rawe_cli.models import Bar, Direction, Order, OrderUpdate, Proposal
from tests.procs import take_over
from tests.redis_server import needs_redis_server

HANDS = ("a", "b", "c")


class RecordingBroker(PaperBroker):
    """The paper broker, noting every order it is sent (and, optionally, checking then)."""

    def __init__(self, check=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.sent: list[str] = []
        self.check = check

    def submit(self, order: Order) -> OrderUpdate:
        if self.check is not None:
            self.check(order)
        self.sent.append(order.client_order_id)
        return super().submit(order)


def make(client, ns: str, fence, broker=None):  # type: ignore[no-untyped-def]
    keys = Keys(ns)
    col = Collective(Settings(namespace=ns, threshold=3.0, window=30.0, scheme="majority"),
                     {n: AgentRecord(n, n) for n in HANDS}, MajorityScheme(),
                     broker or RecordingBroker(), write_ahead=True)
    col.on_bar(Bar(time.time(), "AAPL", 100.0, 100.0, 100.0, 100.0, 1.0))
    consumer = ProposalConsumer(Bus(client, keys), Store(client, keys), col,
                                consumer=f"c-{uuid.uuid4().hex[:6]}", fence=fence)
    return col, consumer


async def votes(client, ns: str) -> None:  # type: ignore[no-untyped-def]
    for name in HANDS:
        p = Proposal(f"p-{uuid.uuid4().hex[:10]}", name, "AAPL", Direction.LONG, 0.1, 0.0,
                     0.5, "", "manual", time.time())
        await client.xadd(Keys(ns).proposals, codec.encode_proposal(p))


@needs_redis_server
def test_a_token_from_before_a_restart_never_passes(server):
    """The stale-token trial: engine A holds fence 1 and is paused; Redis restarts empty;
    B takes the lease and also gets fence 1. Before: A's write passed (5 of 11 trials)."""

    async def trial() -> None:
        ns = "trial"
        a_client = await connect(server.url)
        a = await Lease(a_client, Keys(ns), "A", 60_000).try_acquire()
        assert a.outcome == "ok" and a.fresh
        col, consumer = make(a_client, ns, a.token)
        await consumer.start()
        # A is paused here. Redis restarts empty; B, a new engine, takes the lease.
        server.stop()
        server.start()
        b_client = await connect(server.url)
        b = await Lease(b_client, Keys(ns), "B", 60_000).try_acquire()
        assert b.outcome == "ok" and b.token.counter == a.token.counter  # the counter repeats
        _, b_consumer = make(b_client, ns, b.token)
        await b_consumer.start()
        await votes(b_client, ns)
        # A resumes: it reads the votes and decides, and its fenced write must be refused
        with pytest.raises(Fenced):
            await consumer.poll(time.time())
        k = Keys(ns)
        for key in (k.decisions, k.positions, k.portfolio, k.seen_buckets):
            assert not await b_client.exists(key), key
        assert col.broker.sent == []  # written ahead: nothing reached the broker either
        # the votes are left for B, which counts them
        assert await b_consumer.claim_stale(time.time(), min_idle_ms=0) == 3
        assert len(b_consumer.col.ledger) == 1
        await a_client.aclose()
        await b_client.aclose()

    for _ in range(5):
        asyncio.run(trial())
        server.cli("flushall")


@needs_redis_server
def test_a_write_into_an_emptied_redis_is_refused_not_partial(server):
    """Redis came back empty and nobody took the lease: the engine's next write is refused
    as EMPTY (it rewrites the whole state instead, see ConsensusService)."""

    async def go() -> None:
        client = await connect(server.url)
        got = await Lease(client, Keys("e"), "A", 60_000).try_acquire()
        col, consumer = make(client, "e", got.token)
        await consumer.start()
        await votes(client, "e")
        await consumer.poll(time.time())
        assert len(col.ledger) == 1 and col.broker.sent  # decided, recorded, sent
        server.stop()
        server.start()
        col.on_bar(Bar(time.time(), "AAPL", 101.0, 101.0, 101.0, 101.0, 1.0))
        with pytest.raises(RedisLost):
            await consumer.expire(time.time())
        assert await client.dbsize() == 0
        await client.aclose()

    asyncio.run(go())


@needs_redis_server
def test_the_engine_rewrites_its_state_into_a_redis_emptied_under_it(server):
    """A Redis that lost everything without the engine seeing a connection error (a quick
    restart hidden by retries; here FLUSHALL): NOGROUP / EMPTY, then the whole state is
    written back, and the engine carries on with a new token."""

    async def go() -> None:
        lines: list[str] = []
        opts = ConsensusOptions(settings=Settings(namespace="w", threshold=3.0, window=30.0,
                                                  scheme="majority"),
                                redis_url=server.url, lease_ms=3000)
        service = ConsensusService(opts, lines.append)
        task = asyncio.create_task(service.run())
        client = await connect(server.url)
        k = Keys("w")

        async def until(predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got = await predicate()
                if got:
                    return got
                await asyncio.sleep(0.05)
            raise AssertionError(f"not met in {timeout} s: {lines}")

        async def active() -> bool:
            return any(x.startswith("active:") for x in lines)

        await until(active)
        for name in HANDS:
            await client.hset(k.agents, name, json.dumps(AgentRecord(name, "m").to_dict()))
        await client.xadd(k.market, codec.encode_market(Bar(time.time(), "AAPL", 50, 50, 50,
                                                            50, 1)))

        async def priced() -> bool:  # the engine has the price before the votes arrive
            return bool(await client.hexists(k.marks, "AAPL"))

        await until(priced)
        await votes(client, "w")

        async def opened() -> bool:
            return await client.hlen(k.positions) == 1

        await until(opened)
        before = (await client.hgetall(k.decisions), await client.hget(k.portfolio, "cash"),
                  await client.get(k.marker))
        await client.flushall()

        async def rewritten() -> bool:
            return await client.hlen(k.positions) == 1 and await client.exists(k.marker)

        await until(rewritten)
        after = (await client.hgetall(k.decisions), await client.hget(k.portfolio, "cash"),
                 await client.get(k.marker))
        assert after == before
        assert any("wrote this engine's state back" in x for x in lines), lines
        service.stop.set()
        await asyncio.wait_for(task, 20)
        await client.aclose()

    asyncio.run(go())


def test_a_deposed_engine_sends_no_order(redis_url, namespace):
    """Write-ahead: the decision is recorded (fenced) before its order is sent. Before: a
    deposed engine handed the order to its broker while deciding, before its fenced save
    failed (1 of 28 SIGSTOP trials, 8 ms after resuming)."""

    async def go() -> None:
        client = await connect(redis_url)
        k = Keys(namespace)
        old = await Lease(client, k, "old", 200).try_acquire()
        col, consumer = make(client, namespace, old.token)
        await consumer.start()
        await take_over(client, k, "new", old.marker)  # once its lease has run out
        await votes(client, namespace)
        with pytest.raises(Fenced):
            await consumer.poll(time.time())
        assert col.broker.sent == []
        assert not await client.exists(k.decisions)
        await client.aclose()

    asyncio.run(go())


def test_an_order_is_sent_only_once_its_decision_is_recorded(redis_url, namespace):
    import redis

    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    k = Keys(namespace)
    seen: list[dict] = []

    def check(order: Order) -> None:  # called by the broker as the order arrives
        seen.append(json.loads(sync.hget(k.decisions, order.client_order_id) or "null"))

    async def go() -> None:
        client = await connect(redis_url)
        got = await Lease(client, k, "one", 10_000).try_acquire()
        col, consumer = make(client, namespace, got.token, RecordingBroker(check))
        await consumer.start()
        await votes(client, namespace)
        await consumer.poll(time.time())
        assert len(col.broker.sent) == 1
        final = json.loads(await client.hget(k.decisions, col.broker.sent[0]))
        assert final["status"] == "open" and final["order_status"] == "filled"
        assert await client.hlen(k.positions) == 1
        await client.aclose()

    asyncio.run(go())
    sync.close()
    assert seen and seen[0] is not None, "the order reached the broker before its decision"
    assert seen[0]["status"] == "pending" and seen[0]["order_status"] == "new"
