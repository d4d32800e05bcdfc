"""The bus consumer against hostile or unlucky input, on the real Redis: poison messages,
replaced votes, a deposed engine."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.bus import codec
from rawe_cli.bus.consumer import ProposalConsumer
from rawe_cli.bus.keys import CONSENSUS_GROUP, Keys
from rawe_cli.bus.lease import Lease
from rawe_cli.bus.store import Store
from rawe_cli.bus.streams import Bus, connect
from rawe_cli.collective import Collective
from rawe_cli.config import Settings
from rawe_cli.core.weighting import AgentRecord, WinRateScheme
from rawe_cli.errors import CodecError, Fenced
from rawe_cli.models import Bar, Direction, Proposal
from tests.procs import claimed, take_over


def make(client, ns: str, name: str = "c1", fence: int | None = None):
    keys = Keys(ns)
    recs = {n: AgentRecord(n, n) for n in ("a", "b", "c")}
    col = Collective(Settings(namespace=ns, threshold=3.0, window=10.0), recs, WinRateScheme(),
                     PaperBroker())
    consumer = ProposalConsumer(Bus(client, keys), Store(client, keys), col, consumer=name,
                                fence=fence, secret=None)
    return col, consumer, keys


def prop(agent: str, pid: str, direction=Direction.LONG, ts: float | None = None) -> Proposal:
    return Proposal(pid, agent, "AAPL", direction, 0.1, 0.0, 0.3, "n", "manual",
                    ts if ts is not None else time.time())


async def poison(url: str, ns: str) -> None:
    import redis.asyncio as aioredis

    client = await connect(url)
    raw = aioredis.from_url(url)  # bytes in, bytes out: can write what is not UTF-8
    _, consumer, keys = make(client, ns)
    await consumer.start()
    now = time.time()
    good = {"id": "x", "agent": "a", "asset": "AAPL", "direction": "long", "timestamp": now}
    await raw.xadd(keys.proposals, {"data": json.dumps({**good, "size": 10 ** 400})})
    await raw.xadd(keys.proposals, {"data": b"\xff\xfe not utf-8"})
    await raw.xadd(keys.proposals, {"data": json.dumps({**good, "id": "ok", "size": 0.1})})
    n = await consumer.poll(now)
    assert n == 3
    dead = await client.xrange(keys.dead_letter)
    reasons = [f["reason"] for _, f in dead]
    assert any("out of range" in r for r in reasons)
    assert any("field 'data' is not UTF-8" in r for r in reasons)
    assert consumer.stats.accepted == 1
    # nothing poisonous is left pending for the next engine to choke on
    pending = await client.xpending_range(keys.proposals, CONSENSUS_GROUP, "-", "+", 10)
    assert [p["message_id"] for p in pending] == [consumer._live["ok"]]
    await raw.aclose()
    await client.aclose()


def test_poison_messages_are_dead_lettered_not_fatal(redis_url, namespace):
    asyncio.run(poison(redis_url, namespace))


def test_signature_with_non_ascii_is_refused_cleanly():
    p = prop("a", "s1")
    fields = codec.encode_proposal(p, secret="k")
    fields["sig"] = "é" * 64
    with pytest.raises(CodecError, match="bad signature"):
        codec.decode_proposal(fields, secret="k")


def test_market_message_far_ahead_of_the_clock_is_refused():
    now = time.time()
    bar = Bar(now * 1000, "AAPL", 1.0, 1.0, 1.0, 1.0, 1.0)  # stamped in milliseconds
    with pytest.raises(CodecError, match="ahead of the reader's clock"):
        codec.decode_market(codec.encode_market(bar), now)
    ok = Bar(now + 5, "AAPL", 1.0, 1.0, 1.0, 1.0, 1.0)
    assert codec.decode_market(codec.encode_market(ok), now) == ok


async def replaced(url: str, ns: str) -> None:
    client = await connect(url)
    _, consumer, keys = make(client, ns)
    await consumer.start()
    bus = Bus(client, keys)
    now = time.time()
    await bus.add(keys.proposals, codec.encode_proposal(prop("a", "L1", ts=now)))
    await consumer.poll(now)
    await bus.add(keys.proposals, codec.encode_proposal(prop("a", "S1", Direction.SHORT, now)))
    await consumer.poll(now)
    pending = await client.xpending_range(keys.proposals, CONSENSUS_GROUP, "-", "+", 10)
    assert [p["message_id"] for p in pending] == [consumer._live["S1"]]  # L1 acked
    await client.aclose()


def test_a_replaced_vote_is_acked_at_once(redis_url, namespace):
    asyncio.run(replaced(redis_url, namespace))


async def deposed(url: str, ns: str) -> None:
    client = await connect(url)
    keys = Keys(ns)
    first = await Lease(client, keys, "old", 200).try_acquire()
    _, old, keys = make(client, ns, "old", fence=first.token)
    await old.start()
    second = await take_over(client, keys, "new", first.marker)  # once its lease ran out
    assert second.token.counter == first.token.counter + 1
    _, new, _ = make(client, ns, "new", fence=second.token)
    await new.start()
    bus = Bus(client, keys)
    now = time.time()
    await bus.add(keys.proposals, codec.encode_proposal(prop("a", "p1", ts=now)))
    with pytest.raises(Fenced):  # it read something: it learns it is deposed at once
        await old.poll(now)
    taken = await claimed(new, 1)
    assert taken == 1 and "p1" in new._live  # the successor counts the vote
    await client.aclose()


def test_a_deposed_engine_is_fenced_and_its_reads_are_claimed(redis_url, namespace):
    asyncio.run(deposed(redis_url, namespace))
