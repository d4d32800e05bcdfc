"""Issue 9: dedup that survives a restart, bad state records, a future-stamped bar, invalid
UTF-8, dead letters written once, bounded memory and the decision archive. On the shared
Redis (RAWE_TEST_REDIS_URL) with a fresh namespace each; nothing here stops Redis."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path

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
from rawe_cli.core import consensus as cs
from rawe_cli.core.weighting import AgentRecord, MajorityScheme
from rawe_cli.errors import CodecError, Fenced
from rawe_cli.models import Bar, Direction, Proposal
from tests.procs import Proc, claimed, rawe_json, rawe_out, take_over, wait_until

HANDS = ("Ann", "Bob", "Cy")
RULES = ["--threshold", "3", "--window", "30s", "--scheme", "majority"]


def redis_of(url: str):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(url, decode_responses=True)


def proposal(agent: str, asset: str = "AAPL", pid: str | None = None,
             ts: float | None = None) -> Proposal:
    return Proposal(pid or f"s-{uuid.uuid4().hex[:12]}", agent, asset, Direction.LONG, 0.1,
                    0.0, 0.5, "", "manual", time.time() if ts is None else ts)


def register(r, ns: str) -> None:  # type: ignore[no-untyped-def]
    for name in HANDS:
        r.hsetnx(f"{ns}:agents", name, json.dumps(AgentRecord(name, "manual").to_dict()))


def vote(r, ns: str, asset: str = "AAPL") -> set[str]:  # type: ignore[no-untyped-def]
    ids = set()
    for name in HANDS:
        p = proposal(name, asset)
        r.xadd(f"{ns}:proposals", codec.encode_proposal(p))
        ids.add(p.id)
    return ids


def decisions_of(r, ns: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(v) for v in r.hgetall(f"{ns}:decisions").values()]


def read_everything(r, ns: str, pending: int) -> bool:  # type: ignore[no-untyped-def]
    """The engine has read every entry of the proposal stream; `pending` are left."""
    last = r.xrevrange(f"{ns}:proposals", count=1)
    groups = {g["name"]: g for g in r.xinfo_groups(f"{ns}:proposals")}
    g = groups.get(CONSENSUS_GROUP)
    return bool(last and g and g["last-delivered-id"] == last[0][0] and g["pending"] == pending)


def engine(tmp_path: Path, url: str, ns: str, name: str, *extra: str) -> Proc:
    return Proc(["consensus", "--no-dashboard", *RULES, *extra], tmp_path / f"{name}.log",
                {"RAWE_REDIS_URL": url, "RAWE_NAMESPACE": ns})


# -- 5. dedup across restarts ------------------------------------------------------------------


def test_a_duplicate_id_after_kill9_and_restart_does_not_count_twice(tmp_path, redis_url,
                                                                      namespace):
    """Before: the seen-id table lived in memory only; the same id republished after a
    kill -9 and a restart counted again, into a second decision."""
    r = redis_of(redis_url)
    register(r, namespace)
    first = engine(tmp_path, redis_url, namespace, "first", "--lease-ms", "1000")
    first.wait_for("active:")
    ann = proposal("Ann")
    r.xadd(f"{namespace}:proposals", codec.encode_proposal(ann))
    for name in ("Bob", "Cy"):
        r.xadd(f"{namespace}:proposals", codec.encode_proposal(proposal(name)))
    wait_until(lambda: len(decisions_of(r, namespace)) == 1, timeout=60)
    first.kill9()
    second = engine(tmp_path, redis_url, namespace, "second", "--lease-ms", "1000")
    try:
        second.wait_for("active:", timeout=60)
        # the same proposal id again (a new stream entry), and two fresh votes
        r.xadd(f"{namespace}:proposals", codec.encode_proposal(ann))
        for name in ("Bob", "Cy"):
            r.xadd(f"{namespace}:proposals", codec.encode_proposal(proposal(name)))
        # every entry read; the duplicate acked at once, the two fresh votes live
        wait_until(lambda: read_everything(r, namespace, pending=2), timeout=60)
        assert len(decisions_of(r, namespace)) == 1
        buckets = r.zrange(f"{namespace}:seen:buckets", 0, -1)  # recorded in Redis
        assert [b for b in buckets if r.hget(b, ann.id)]  # with its entry id
    finally:
        second.stop()
        r.close()


def test_a_reclaimed_live_vote_is_not_a_duplicate(redis_url, namespace):
    """The seen ids are loaded on restore; a live vote reclaimed from the same entry still
    counts (it is that entry redelivered, not a second proposal)."""

    async def go() -> None:
        client = await connect(redis_url)
        keys = Keys(namespace)

        def col() -> Collective:
            return Collective(Settings(namespace=namespace, threshold=3.0, window=30.0,
                                       scheme="majority"),
                              {n: AgentRecord(n, n) for n in HANDS}, MajorityScheme(),
                              PaperBroker())

        one = col()
        c1 = ProposalConsumer(Bus(client, keys), Store(client, keys), one, consumer="c1")
        await c1.start()
        for name in ("Ann", "Bob"):
            await client.xadd(keys.proposals, codec.encode_proposal(proposal(name)))
        await c1.poll(time.time())
        buckets = await client.zrange(keys.seen_buckets, 0, -1)
        assert sum([len(await client.hgetall(b)) for b in buckets]) == 2
        two = col()  # the first engine died; a new one restores and reclaims
        await Store(client, keys).restore(two)
        assert len(two.engine.seen()) == 2
        c2 = ProposalConsumer(Bus(client, keys), Store(client, keys), two, consumer="c2")
        assert await c2.reclaim(time.time()) == 2
        await client.xadd(keys.proposals, codec.encode_proposal(proposal("Cy")))
        await c2.poll(time.time())
        assert len(two.ledger) == 1
        assert sorted(next(iter(two.ledger.values())).decision.agents) == list(HANDS)
        await client.aclose()

    asyncio.run(go())


def test_seen_ids_live_in_buckets_that_go_whole_when_their_windows_end(redis_url, namespace):
    """Seen ids are kept per 10 s of window ends; a save after a bucket's last end drops the
    whole bucket (and its index entry); ids of the format before the buckets are read at a
    restore and trimmed the old way; an id counted from another entry is refused."""
    from rawe_cli.bus.store import SEEN_BUCKET, SeenIds
    from rawe_cli.errors import StateDiverged

    async def go() -> None:
        client = await connect(redis_url)
        keys = Keys(namespace)
        store = Store(client, keys)
        col = Collective(Settings(namespace=namespace, threshold=3.0, window=30.0,
                                  scheme="majority"), {n: AgentRecord(n, n) for n in HANDS},
                         MajorityScheme(), PaperBroker())
        t0 = 1_800_000_000.0
        seen = SeenIds()
        for i in range(500):  # ends spread over 25 s: three buckets
            seen.add(f"p{i}", f"1-{i}", t0 + i * 0.05)
        await client.hset(keys.seen_proposals, mapping={"old1": "0-1", "old2": "0-2"})
        await client.zadd(keys.seen_expiry, {"old1": t0 - 5, "old2": t0 + 100})
        await store.save(col, seen=seen)
        index = await client.zrange(keys.seen_buckets, 0, -1, withscores=True)
        assert [(k, e) for k, e in index] == [
            (keys.seen_bucket(b), (b + 1) * SEEN_BUCKET)
            for b in sorted({int((t0 + i * 0.05) // SEEN_BUCKET) for i in range(500)})]
        assert sum([await client.hlen(k) for k, _ in index]) == 500
        loaded = await store.seen()
        assert len(loaded) == 502 and loaded["p7"][0] == "1-7" and loaded["old2"][0] == "0-2"
        assert t0 + 7 * 0.05 <= loaded["p7"][1] <= t0 + 7 * 0.05 + SEEN_BUCKET
        assert await store.seen_entries(["p499", "old1", "nope"]) == {"p499": "1-499",
                                                                      "old1": "0-1"}
        # the same id from another entry: refused, and nothing of that write is made
        again = SeenIds()
        again.add("p3", "9-9", t0 + 3 * 0.05)
        again.add("fresh", "9-10", t0 + 3 * 0.05)
        with pytest.raises(StateDiverged):
            await store.save(col, seen=again)
        assert await store.seen_entries(["p3", "fresh"]) == {"p3": "1-3"}
        # a trim after the first bucket's last end (and old1's): they go, the others stay
        first_end = index[0][1]
        await store.save(col, trim_before=first_end)
        left = await client.zrange(keys.seen_buckets, 0, -1, withscores=True)
        assert left == index[1:] and not await client.exists(index[0][0])
        assert await client.hgetall(keys.seen_proposals) == {"old2": "0-2"}
        await store.save(col, trim_before=t0 + 1000)
        assert not await client.exists(keys.seen_buckets, keys.seen_proposals,
                                       *[k for k, _ in index])
        await client.aclose()

    asyncio.run(go())


# -- 6. bad agent records ----------------------------------------------------------------------


def test_unreadable_agent_records_are_skipped_not_fatal(tmp_path, redis_url, namespace):
    """Before: `HSET rawe:agents evil 'not json'` (or no name, or negative wins) killed the
    running engine, and every new one died in restore."""
    r = redis_of(redis_url)
    agents = f"{namespace}:agents"
    r.hset(agents, "evil", "not json")
    r.hset(agents, "noname", json.dumps({"personality": "x"}))
    r.hset(agents, "neg", json.dumps({"name": "neg", "wins": -3}))
    register(r, namespace)
    cons = engine(tmp_path, redis_url, namespace, "cons")
    env = {"RAWE_REDIS_URL": redis_url, "RAWE_NAMESPACE": namespace}
    try:
        cons.wait_for("active:")
        cons.wait_for("warning: agent record", count=3)
        text = cons.text()
        assert "'evil' is unreadable (bad JSON" in text
        assert "'noname' is unreadable (missing field 'name')" in text
        assert "'neg' is unreadable (field 'wins' must be an integer >= 0" in text
        ids = vote(r, namespace)
        got = wait_until(lambda: decisions_of(r, namespace), timeout=60)
        assert set(got[0]["proposal_ids"]) == ids
        r.hset(agents, "late", "{")  # one more, while it runs
        cons.wait_for("'late' is unreadable", timeout=60)
        assert cons.p.poll() is None
        proc = rawe_out("weights", "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        assert sorted(w["name"] for w in json.loads(proc.stdout)) == sorted(HANDS)
        assert "rawe: warning: agent record 'evil' is unreadable" in proc.stderr
        notes = [f for _, f in r.xrange(f"{namespace}:deadletter")
                 if f["source"] == agents]
        assert {f["entry_id"] for f in notes} == {"evil", "noname", "neg", "late"}
        assert all(f["reason"].startswith("unreadable agent record") for f in notes)
    finally:
        cons.stop()
        r.close()


def test_agent_record_checks():
    good = AgentRecord("A", "p", wins=2, losses=1, pnl=-3.5)
    assert codec.agent_from_json("A", json.dumps(good.to_dict())) == good
    for raw, reason in (("not json", "bad JSON"), ("[1]", "must be a JSON object"),
                        ('{"personality": "x"}', "missing field 'name'"),
                        ('{"name": "B"}', "stored as 'A'"),
                        ('{"name": "A", "wins": -1}', "'wins' must be an integer >= 0"),
                        ('{"name": "A", "losses": 1.5}', "'losses' must be an integer"),
                        ('{"name": "A", "weight": 0}', "'weight' must be > 0"),
                        ('{"name": "A", "pnl": NaN}', "'pnl' must be finite"),
                        ('{"name": "A", "regime_scores": {"x": -1}}', "'x' must be > 0")):
        with pytest.raises(CodecError, match=reason):
            codec.agent_from_json("A", raw)


# -- 7. clock hygiene --------------------------------------------------------------------------


def test_a_future_bar_is_refused_and_does_not_silence_the_collective(tmp_path, redis_url,
                                                                     namespace):
    """Before: a bar 80,000 s ahead (under the one-day limit) moved the engine's clock; every
    valid proposal from then on was acked as expired, and it survived a restart."""
    r = redis_of(redis_url)
    register(r, namespace)
    cons = engine(tmp_path, redis_url, namespace, "cons")
    try:
        cons.wait_for("listening:")  # bars from now on are read, not taken from the tail
        now = time.time()
        r.xadd(f"{namespace}:market", codec.encode_market(
            Bar(now + 80_000, "AAPL", 10.0, 10.0, 10.0, 10.0, 1.0)))
        dead = wait_until(lambda: r.xrange(f"{namespace}:deadletter"), timeout=60)
        assert "ahead of the reader's clock (at most 60 s allowed" in dead[0][1]["reason"]
        assert dead[0][1]["source"] == f"{namespace}:market"
        ids = vote(r, namespace)
        got = wait_until(lambda: decisions_of(r, namespace), timeout=60)
        assert set(got[0]["proposal_ids"]) == ids
        assert float(r.hget(f"{namespace}:portfolio", "event_time") or 0) < now + 60
    finally:
        cons.stop()
    again = engine(tmp_path, redis_url, namespace, "again")
    try:  # and after a restart
        again.wait_for("active:")
        ids = vote(r, namespace, "MSFT")
        wait_until(lambda: any(set(d["proposal_ids"]) == ids
                               for d in decisions_of(r, namespace)), timeout=60)
        assert len(r.xrange(f"{namespace}:deadletter")) == 1  # not dead-lettered again
    finally:
        again.stop()
        r.close()


def test_market_clock_tolerance_is_against_the_wall_clock():
    now = time.time()

    def bar(ts: float) -> dict[str, str]:
        return codec.encode_market(Bar(ts, "AAPL", 1.0, 1.0, 1.0, 1.0, 1.0))

    assert codec.decode_market(bar(now + 59), now).timestamp == now + 59
    with pytest.raises(CodecError, match="61 s ahead"):
        codec.decode_market(bar(now + 61), now)
    assert codec.decode_market(bar(now + 3000), now, max_ahead=3600).timestamp == now + 3000
    assert codec.decode_market(bar(now + 10 ** 6)).timestamp == now + 10 ** 6  # replay: no now


# -- 8. strict decoding ------------------------------------------------------------------------


async def _invalid_utf8(url: str | None, ns: str) -> None:
    import redis.asyncio as aioredis

    client = await connect(url)
    raw = client if url is None else aioredis.from_url(url)
    keys = Keys(ns)
    col = Collective(Settings(namespace=ns, threshold=3.0, window=30.0, scheme="majority"),
                     {"a": AgentRecord("a", "a")}, MajorityScheme(), PaperBroker())
    consumer = ProposalConsumer(Bus(client, keys), Store(client, keys), col, consumer="u")
    await consumer.start()
    rng = random.Random(9)
    now = time.time()
    n = 60
    for i in range(n):
        good = json.dumps({"id": f"u{i}", "agent": "a", "asset": "FZnX", "direction": "long",
                           "size": 0.1, "timestamp": now}).encode()
        at = good.index(b"FZnX") + rng.randrange(4)
        bad = good[:at] + bytes([rng.choice([0x80, 0xC3, 0xE2, 0xFF, 0xFE])]) + good[at + 1:]
        if url is None:  # fakeredis through the client: the same bytes as U+DC80..U+DCFF
            await raw.xadd(keys.proposals, {"data": bad.decode("utf-8", "surrogateescape")})
        else:
            await raw.xadd(keys.proposals, {"data": bad})
    lone = json.dumps({"id": "esc", "agent": "a", "asset": "\udcff", "direction": "long",
                       "size": 0.1, "timestamp": now})  # a JSON-escaped lone surrogate
    await client.xadd(keys.proposals, {"data": lone})
    await consumer.poll(now, count=1000)
    assert consumer.stats.accepted == 0 and col.ledger == {}
    dead = await client.xrange(keys.dead_letter)
    assert len(dead) == n + 1
    reasons = [f["reason"] for _, f in dead]
    assert reasons.count("field 'data' is not UTF-8") == n
    assert reasons[-1] == "field 'asset' is not UTF-8"
    if url is not None:  # the dead letter keeps the original bytes
        first = (await raw.xrange(keys.dead_letter, count=1))[0][1][b"f_data"]
        assert b"FZn" in first and first != first.decode("utf-8", "replace").encode()
        await raw.aclose()
    await client.aclose()


def test_invalid_utf8_anywhere_in_data_is_dead_lettered(redis_url, namespace):
    """Before: 300 of 300 such entries were decoded with U+FFFD and counted (asset
    'FZn\\ufffd')."""
    asyncio.run(_invalid_utf8(redis_url, namespace))


def test_invalid_utf8_is_dead_lettered_embedded():
    asyncio.run(_invalid_utf8(None, "rawe"))


# -- 9. dead letters exactly once --------------------------------------------------------------


def test_a_dead_letter_is_written_once(redis_url, namespace):
    """Before: a dead letter was XADDed before the fenced save that acks its entry: a
    deposed engine wrote it, failed its save, and its successor wrote it again."""

    async def go() -> None:
        client = await connect(redis_url)
        keys = Keys(namespace)

        def consumer(name: str, token) -> ProposalConsumer:  # type: ignore[no-untyped-def]
            col = Collective(Settings(namespace=namespace), {"a": AgentRecord("a", "a")},
                             MajorityScheme(), PaperBroker())
            return ProposalConsumer(Bus(client, keys), Store(client, keys), col,
                                    consumer=name, fence=token)

        old = await Lease(client, keys, "old", 200).try_acquire()
        deposed = consumer("old", old.token)
        await deposed.start()
        await client.xadd(keys.proposals, {"data": "{not json"})
        new = await take_over(client, keys, "new", old.marker)
        active = consumer("new", new.token)
        with pytest.raises(Fenced):
            await deposed.poll(time.time())
        assert await client.xlen(keys.dead_letter) == 0
        assert await claimed(active, 1) == 1
        assert await active.claim_stale(time.time(), min_idle_ms=0) == 0
        dead = await client.xrange(keys.dead_letter)
        assert len(dead) == 1 and dead[0][1]["reason"].startswith("bad JSON")
        assert await Bus(client, keys).pending_count(keys.proposals, CONSENSUS_GROUP) == 0
        await client.aclose()

    asyncio.run(go())


# -- 10. bounded memory and the archive --------------------------------------------------------


def test_empty_books_are_freed():
    engine = cs.ConsensusEngine(threshold=3.0, window=10.0)
    for name in HANDS:
        engine.register(name)
    for i in range(1000):  # a thousand assets, one vote each, then silence
        engine.submit(proposal("Ann", f"X{i}", ts=0.0), 0.0)
    assert engine.books == 1000
    assert engine.sweep(5.0) == 0
    assert engine.sweep(10.0) == 1000 and engine.books == 0
    for name in HANDS:  # a decision consumes every vote and frees its book
        status, _ = engine.submit(proposal(name, "Y", ts=20.0), 20.0)
    assert status == cs.DECIDED and engine.books == 0
    assert engine.seen() == {} or max(engine.seen().values()) > 20.0


def test_the_engine_keeps_open_and_recent_decisions_only():
    s = Settings(threshold=3.0, window=10.0, scheme="majority", max_open_positions=1000,
                 max_gross_exposure=1000.0, max_position_fraction=0.001)
    col = Collective(s, {n: AgentRecord(n, n) for n in HANDS}, MajorityScheme(), PaperBroker())
    t = 1000.0
    for i in range(600):
        asset = f"A{i}"
        if i % 3 == 0:
            col.on_bar(Bar(t, asset, 10.0, 10.0, 10.0, 10.0, 1.0))  # priced: opens
        for name in HANDS:
            col.on_proposal(proposal(name, asset, ts=t), t)
        t += 1.0
    col.dirty.clear()  # saved
    assert len(col.ledger) == 600 and col.decisions_total == 600
    opened = {e.decision.id for e in col.ledger.values() if not e.final}
    assert len(opened) == 200
    col.prune(t, keep_seconds=60.0, keep_final=100)
    kept = set(col.ledger)
    assert opened <= kept  # every open decision stays
    finals = [e for e in col.ledger.values() if e.final]
    assert 100 <= len(finals) <= 100 + 60  # the newest 100, and the last minute's
    assert col.decisions_total == 600


def test_prices_taken_from_the_market_tail_at_start_are_saved(tmp_path, redis_url,
                                                              namespace):
    """A bar published before the engine starts is taken from the stream's tail: its mark
    is part of the state and reaches Redis (it used to wait for the next bar)."""
    r = redis_of(redis_url)
    r.xadd(f"{namespace}:market", codec.encode_market(
        Bar(time.time(), "NVDA", 7.0, 7.0, 7.0, 7.0, 1.0)))
    cons = engine(tmp_path, redis_url, namespace, "cons")
    try:
        cons.wait_for("active:")
        wait_until(lambda: r.hget(f"{namespace}:marks", "NVDA") == "7.0", timeout=60)
    finally:
        cons.stop()
        r.close()


def test_decisions_past_the_retention_move_to_the_archive(tmp_path, redis_url, namespace):
    r = redis_of(redis_url)
    register(r, namespace)
    archive = tmp_path / "archive.jsonl"
    settings = tmp_path / "s.yaml"
    settings.write_text(f"ledger_retention: 1s\narchive: {archive}\n")
    env = {"RAWE_REDIS_URL": redis_url, "RAWE_NAMESPACE": namespace}
    cons = engine(tmp_path, redis_url, namespace, "cons", "-c", str(settings))
    try:
        cons.wait_for("active:")
        skipped = vote(r, namespace, "AAPL")  # no price: skipped, final
        r.xadd(f"{namespace}:market", codec.encode_market(
            Bar(time.time(), "MSFT", 10.0, 10.0, 10.0, 10.0, 1.0)))
        wait_until(lambda: r.hexists(f"{namespace}:marks", "MSFT"), timeout=60)
        opened = vote(r, namespace, "MSFT")  # priced: an open position, not final
        lines = wait_until(lambda: archive.exists() and archive.read_text().splitlines(),
                           timeout=30)
        assert [set(json.loads(x)["proposal_ids"]) for x in lines] == [skipped]
        wait_until(lambda: r.hlen(f"{namespace}:decisions") == 1, timeout=60)
        left = decisions_of(r, namespace)
        assert set(left[0]["proposal_ids"]) == opened and left[0]["status"] == "open"
        live = rawe_json("decisions", "--json", env=env)
        assert [d["status"] for d in live] == ["open"]
        both = rawe_json("decisions", "--json", "--archived", "-c", str(settings), env=env)
        assert sorted(d["status"] for d in both) == ["open", "skipped"]
        assert cons.p.poll() is None
    finally:
        cons.stop()
        r.close()


def test_a_restore_reads_open_and_recent_decisions_and_migrates_an_old_ledger():
    async def go() -> None:
        client = await connect(None)
        keys = Keys("m")
        s = Settings(namespace="m", threshold=3.0, window=10.0, scheme="majority")

        def fresh() -> Collective:
            return Collective(s, {n: AgentRecord(n, n) for n in HANDS}, MajorityScheme(),
                              PaperBroker())

        col = fresh()
        col.on_bar(Bar(1.0, "OPEN", 10.0, 10.0, 10.0, 10.0, 1.0))
        for name in HANDS:
            col.on_proposal(proposal(name, "OPEN", ts=1.0), 1.0)
        for i in range(700):  # newer, final (no price: skipped)
            for name in HANDS:
                col.on_proposal(proposal(name, f"X{i}", ts=2.0 + i), 2.0 + i)
        await Store(client, keys).save(col)
        opened = next(d for d, e in col.ledger.items() if not e.final)
        again = fresh()
        loaded = await Store(client, keys).restore(again)
        assert loaded["decisions"] == 701 and len(again.ledger) == 501
        assert opened in again.ledger  # open: always restored, however old
        await client.delete(keys.open_decisions)  # a ledger from before the open set
        old = fresh()
        await Store(client, keys).restore(old)
        assert len(old.ledger) == 701 and old.dirty.decisions == {opened}
        await Store(client, keys).save(old)
        assert await client.smembers(keys.open_decisions) == {"~", opened}
        await client.aclose()

    asyncio.run(go())
