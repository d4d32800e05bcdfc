"""Issue 12: the engine's pipelined loop (`ProposalConsumer.poll_ahead`): the next batch is
read before this one is applied, and a batch's write is on its way while the next batch is
applied. The order of effects must stay `poll`'s: orders only after the write that records
them, and a write that fails loses nothing. Real Redis (RAWE_TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid

import pytest
import redis.exceptions as rex

from rawe_cli.bus import codec
from rawe_cli.bus.keys import CONSENSUS_GROUP, Keys
from rawe_cli.bus.lease import Lease
from rawe_cli.bus.store import Store
from rawe_cli.bus.streams import connect
from rawe_cli.errors import Fenced
from rawe_cli.models import Bar, Direction, Proposal
from rawe_cli.ui.lines import Lines
from tests.test_fencing import HANDS, make


async def publish(client, ns: str, asset: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Three agreeing proposals on `asset`: one decision."""
    ids = []
    for name in HANDS:
        p = Proposal(f"p-{uuid.uuid4().hex[:10]}", name, asset, Direction.LONG, 0.1, 0.0,
                     0.5, "", "manual", time.time())
        await client.xadd(Keys(ns).proposals, codec.encode_proposal(p))
        ids.append(p.id)
    return ids


async def ledger(client, ns: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {k: json.loads(v) for k, v in (await client.hgetall(Keys(ns).decisions)).items()}


async def pending(client, ns: str) -> int:  # type: ignore[no-untyped-def]
    return int((await client.xpending(Keys(ns).proposals, CONSENSUS_GROUP))["pending"])


def fail_send(consumer, which: int) -> None:  # type: ignore[no-untyped-def]
    """The consumer's `which`-th write (1-based) does not reach Redis; the others do."""
    real_send = consumer.store.send
    calls = {"n": 0}

    async def send(write):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == which:
            raise rex.ConnectionError("connection reset (test)")
        await real_send(write)

    consumer.store.send = send


async def engine(client, ns: str):  # type: ignore[no-untyped-def]
    got = await Lease(client, Keys(ns), "e", 60_000).try_acquire()
    assert got.token is not None
    col, consumer = make(client, ns, got.token)  # a price for AAPL
    col.on_bar(Bar(time.time(), "MSFT", 50.0, 50.0, 50.0, 50.0, 1.0))
    col.fence = got.token.counter
    await consumer.commit(time.time())
    await consumer.start()
    return col, consumer


def test_a_batch_s_orders_go_out_only_after_its_write(redis_url, namespace):
    async def go() -> None:
        client = await connect(redis_url)
        col, consumer = await engine(client, namespace)
        await publish(client, namespace, "AAPL")
        assert await consumer.poll_ahead(time.time) == 3
        # decided and written ahead, but its write is still on its way: nothing sent yet
        assert len(col.ledger) == 1 and col.broker.sent == [] and col.outbox
        decision = next(iter(col.ledger))
        await consumer.settle()
        assert col.broker.sent == [decision]  # saved, then sent
        stored = await ledger(client, namespace)
        assert stored[decision]["status"] == "open"  # the fill, saved by the second write
        assert await pending(client, namespace) == 0  # the consumed votes acked
        assert consumer.stats.decisions == 1
        await consumer.finish_reads(time.time())
        await client.aclose()

    asyncio.run(go())


def test_a_write_that_fails_on_its_way_loses_nothing(redis_url, namespace):
    """Batch 1's write does not reach Redis; batch 2 is applied meanwhile. The failure shows
    at batch 2, nothing of either batch is sent to the broker, and the next write records
    both batches (decisions, seen ids, acks) and then sends each order once."""

    async def go() -> None:
        client = await connect(redis_url)
        col, consumer = await engine(client, namespace)
        fail_send(consumer, 1)
        first = await publish(client, namespace, "AAPL")
        second = await publish(client, namespace, "MSFT")
        # batch 1 applied, batch 2 read ahead; batch 1's write fails on its way
        assert await consumer.poll_ahead(time.time, count=3) == 3
        with pytest.raises(rex.ConnectionError):  # batch 2 applied, batch 1's failure shows
            await consumer.poll_ahead(time.time, count=3)
        assert len(col.ledger) == 2
        assert col.broker.sent == []
        assert await ledger(client, namespace) == {}
        assert await pending(client, namespace) == 6
        await consumer.commit(time.time())  # the recovery's write: everything, in one
        stored = await ledger(client, namespace)
        assert len(stored) == 2 and {d["asset"] for d in stored.values()} == {"AAPL", "MSFT"}
        assert {d["status"] for d in stored.values()} == {"open"}
        assert sorted(col.broker.sent) == sorted(stored)  # each order once, after the save
        assert await pending(client, namespace) == 0
        assert set(await Store(client, Keys(namespace)).seen_entries(first + second)) == {
            *first, *second}
        assert consumer.stats.decisions == 2  # told once each, after their write
        await client.aclose()

    asyncio.run(go())


def test_the_fills_write_of_a_batch_holds_nothing_of_the_next(redis_url, namespace):
    """Batch 1's orders are sent and their fills saved while batch 2 is already applied in
    memory: that save must not carry batch 2's decisions (they would reach Redis without
    their seen ids and acks). Batch 2's own write fails here: Redis must hold batch 1 only,
    and the next write then records batch 2 whole."""

    async def go() -> None:
        client = await connect(redis_url)
        _, consumer = await engine(client, namespace)
        fail_send(consumer, 3)  # 1: batch 1, 2: its fills, 3: batch 2
        await publish(client, namespace, "AAPL")
        second = await publish(client, namespace, "MSFT")
        await consumer.poll_ahead(time.time, count=3)
        await consumer.poll_ahead(time.time, count=3)  # batch 2 applied; batch 1 settles
        with pytest.raises(rex.ConnectionError):
            await consumer.settle()
        stored = await ledger(client, namespace)
        assert [d["asset"] for d in stored.values()] == ["AAPL"]
        assert next(iter(stored.values()))["status"] == "open"  # batch 1's fill was saved
        assert await Store(client, Keys(namespace)).seen_entries(second) == {}
        await consumer.commit(time.time())
        stored = await ledger(client, namespace)
        assert sorted(d["asset"] for d in stored.values()) == ["AAPL", "MSFT"]
        assert set(await Store(client, Keys(namespace)).seen_entries(second)) == set(second)
        assert await pending(client, namespace) == 0
        await client.aclose()

    asyncio.run(go())


def test_a_batch_read_ahead_before_an_outage_is_applied_after_it(redis_url, namespace):
    """The read ahead had its reply when Redis went away; the engine abandons the pipeline.
    Those entries are pending under this consumer, where nobody else claims them:
    `recover_own` applies them, and not the live votes pending beside them."""

    async def go() -> None:
        client = await connect(redis_url)
        col, consumer = await engine(client, namespace)
        lone = Proposal(f"p-{uuid.uuid4().hex[:10]}", "a", "TSLA", Direction.LONG, 0.1, 0.0,
                        0.5, "", "manual", time.time())
        await client.xadd(Keys(namespace).proposals, codec.encode_proposal(lone))
        await publish(client, namespace, "AAPL")
        await publish(client, namespace, "MSFT")
        await consumer.poll_ahead(time.time, count=4)  # TSLA (live) and AAPL, MSFT ahead
        await asyncio.sleep(0.05)  # the read ahead has its reply
        assert await consumer.abandon() is None  # batch 1's write went through
        assert await pending(client, namespace) == 4  # TSLA live, MSFT read and not applied
        assert await consumer.recover_own(time.time()) == 3
        assert sorted(e.decision.asset for e in col.ledger.values()) == ["AAPL", "MSFT"]
        assert await pending(client, namespace) == 1  # the live TSLA vote, counted once
        assert col.engine.stats["accepted"] == 7
        await client.aclose()

    asyncio.run(go())


def test_a_fence_taken_while_a_write_is_on_its_way_sends_nothing(redis_url, namespace):
    async def go() -> None:
        client = await connect(redis_url)
        col, consumer = await engine(client, namespace)
        await publish(client, namespace, "AAPL")
        await client.incr(Keys(namespace).fence)  # another engine took over meanwhile
        await consumer.poll_ahead(time.time)
        with pytest.raises(Fenced):
            await consumer.settle()
        assert col.broker.sent == [] and await ledger(client, namespace) == {}
        assert await pending(client, namespace) == 3  # left for the new engine
        await consumer.abandon()
        await client.aclose()

    asyncio.run(go())


def test_the_read_ahead_is_applied_at_a_clean_stop(redis_url, namespace):
    async def go() -> None:
        client = await connect(redis_url)
        col, consumer = await engine(client, namespace)
        await publish(client, namespace, "AAPL")
        await consumer.poll_ahead(time.time, block_ms=2000)  # the next read blocks, waiting
        msft = await publish(client, namespace, "MSFT")  # read ahead, not applied yet
        await asyncio.sleep(0.05)
        assert {e.decision.asset for e in col.ledger.values()} == {"AAPL"}
        # the blocked read ahead returned with the first new entry (Redis answers a blocked
        # read as soon as anything arrives): applied and saved at the stop, a live vote
        await consumer.finish_reads(time.time())
        assert await pending(client, namespace) == 1
        assert list(await Store(client, Keys(namespace)).seen_entries(msft)) == msft[:1]
        await consumer.drain(time.time())  # the other two: the decision
        assert {e.decision.asset for e in col.ledger.values()} == {"AAPL", "MSFT"}
        assert await pending(client, namespace) == 0
        await client.aclose()

    asyncio.run(go())


def test_held_lines_are_written_at_the_next_flush() -> None:
    class Counting(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    out = Counting()
    say = Lines(out, stamps=False)
    say("one")
    assert out.flushes == 1
    say.held = True
    say("two")
    say("three")
    assert out.flushes == 1 and out.getvalue() == "one\ntwo\nthree\n"
    say.flush()
    assert out.flushes == 2


def test_settling_the_heap_again_lets_the_previous_garbage_go() -> None:
    """After standing by, the engine settles the heap again: what the first call froze and is
    garbage now (the previous collective's cycles) must be collected, not kept for good."""
    import gc
    import weakref

    from rawe_cli.app.services import settle_heap

    class Node:
        other: object = None

    before = gc.get_threshold()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the collector frees it
        gone = weakref.ref(a)
        settle_heap()  # frozen with everything alive now
        del a, b
        gc.collect()
        assert gone() is not None  # frozen objects are not scanned
        settle_heap()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
