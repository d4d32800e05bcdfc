"""Issue 9: nothing lost when Redis blinks. Each test runs its own redis-server on a free
loopback port (never the shared one) and stops or restarts it under running processes:
short outages, a restart with a standby (with and without persistence), and the agents'
registrations. Every wait polls for its condition with a generous limit."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rawe_cli.bus import codec
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.models import Bar, Direction, Proposal
from tests.procs import Proc, wait_until
from tests.redis_server import RedisServer, needs_redis_server

pytestmark = needs_redis_server
NS = "blink"
HANDS = ("Ann", "Bob", "Cy")
RULES = ["--threshold", "3", "--window", "30s", "--scheme", "majority"]


@pytest.fixture
def aof_server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path, appendonly=True)
    srv.start()
    yield srv
    if srv.up():
        srv.stop()


def client(srv: RedisServer):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(srv.url, decode_responses=True)


def env_of(srv: RedisServer) -> dict[str, str]:
    return {"RAWE_REDIS_URL": srv.url, "RAWE_NAMESPACE": NS}


def engine(tmp_path: Path, srv: RedisServer, name: str, *extra: str) -> Proc:
    return Proc(["consensus", "--no-dashboard", *RULES, *extra], tmp_path / f"{name}.log",
                env_of(srv))


def register(srv: RedisServer) -> None:
    r = client(srv)
    for name in HANDS:
        r.hsetnx(f"{NS}:agents", name, json.dumps(AgentRecord(name, "manual").to_dict()))
    r.close()


def price(srv: RedisServer, symbol: str, value: float = 100.0) -> None:
    r = client(srv)
    r.xadd(f"{NS}:market", codec.encode_market(Bar(time.time(), symbol, value, value, value,
                                                   value, 1.0)))
    r.close()


def vote(srv: RedisServer, asset: str) -> set[str]:
    """One long proposal on `asset` from each of the three hands: a decision."""
    r = client(srv)
    ids = set()
    for name in HANDS:
        p = Proposal(f"v-{uuid.uuid4().hex[:12]}", name, asset, Direction.LONG, 0.1, 0.0, 0.5,
                     "", "manual", time.time())
        r.xadd(f"{NS}:proposals", codec.encode_proposal(p))
        ids.add(p.id)
    r.close()
    return ids


def ledger(srv: RedisServer) -> dict[str, dict]:
    r = client(srv)
    try:
        return {k: json.loads(v) for k, v in r.hgetall(f"{NS}:decisions").items()}
    except Exception:
        return {}
    finally:
        r.close()


def decided(srv: RedisServer, ids: set[str]) -> dict | None:
    """The decision made of these proposal ids, once it is in the ledger."""
    for d in ledger(srv).values():
        if set(d["proposal_ids"]) == ids:
            return d
    return None


def state(srv: RedisServer) -> dict:
    """What must survive: the ledger, the positions, the cash, the agents, the marker."""
    r = client(srv)
    try:
        return {
            "decisions": {k: json.loads(v)["status"]
                          for k, v in r.hgetall(f"{NS}:decisions").items()},
            "positions": sorted(r.hkeys(f"{NS}:positions")),
            "cash": r.hget(f"{NS}:portfolio", "cash"),
            "agents": sorted(r.hkeys(f"{NS}:agents")),
            "marker": r.get(f"{NS}:state-marker"),
        }
    finally:
        r.close()


def consumed(srv: RedisServer) -> bool:
    """The engine has read every proposal on the stream and left none pending."""
    r = client(srv)
    try:
        last = r.xrevrange(f"{NS}:proposals", count=1)
        groups = {g["name"]: g for g in r.xinfo_groups(f"{NS}:proposals")}
        group = groups.get("consensus")
        return bool(last and group and group["last-delivered-id"] == last[0][0]
                    and group["pending"] == 0)
    except Exception:
        return False
    finally:
        r.close()


def open_a_position(srv: RedisServer, asset: str) -> dict:
    price(srv, asset)
    # the engine has the price (it saved the mark) before the votes arrive
    wait_until(lambda: client(srv).hexists(f"{NS}:marks", asset), timeout=60, every=0.05)
    ids = vote(srv, asset)
    d = wait_until(lambda: decided(srv, ids), timeout=60)
    try:
        wait_until(lambda: (decided(srv, ids) or {}).get("status") == "open", timeout=60)
    except AssertionError:
        raise AssertionError(f"not open: {decided(srv, ids)}") from None
    return d


@pytest.mark.parametrize("outage", [0.5, 2.0])
def test_a_short_outage_does_not_kill_the_engine(tmp_path, server, outage):
    """Before: the engine died at once of NOGROUP from XREADGROUP, and `rawe agents` said
    nothing and never registered again."""
    register(server)
    cons = engine(tmp_path, server, "cons")
    agents = Proc(["agents", "-n", "3", "--speed", "1", "-q"], tmp_path / "agents.log",
                  env_of(server))
    try:
        cons.wait_for("active:")
        agents.wait_for("registered 3 agents")
        names = set(client(server).hkeys(f"{NS}:agents")) - set(HANDS)
        # assets the agents' synthetic world does not trade: its bars would move the mark
        # and could close the position (take-profit) before the test sees it open
        before = open_a_position(server, "ZOPN")
        server.stop()
        time.sleep(outage)  # the fault itself: Redis is away this long
        server.start()
        # decisions resume once Redis is back (in about a second on an idle machine; the
        # limit is generous so that a busy machine does not fail it)
        ids = vote(server, "ZVOT")
        wait_until(lambda: decided(server, ids), timeout=45, every=0.1)
        assert cons.p.poll() is None, cons.text()
        assert "Traceback" not in cons.text()
        assert before["id"] in ledger(server)  # the state was written back
        # the agents said so and registered again
        agents.wait_for("registering 3 agents again", timeout=60)
        wait_until(lambda: names <= set(client(server).hkeys(f"{NS}:agents")), timeout=60)
        assert agents.p.poll() is None, agents.text()
    finally:
        agents.stop()
        cons.stop()
    assert "Redis" in cons.text()


def test_restart_with_a_standby_and_aof_keeps_everything(tmp_path, aof_server):
    srv = aof_server
    register(srv)
    a = engine(tmp_path, srv, "a")
    a.wait_for("active:")
    b = engine(tmp_path, srv, "b")
    try:
        b.wait_for("standing by:")
        assert "Redis persistence: AOF on" in a.text()
        open_a_position(srv, "AAPL")
        kept = state(srv)
        assert kept["positions"] == ["AAPL"] and kept["marker"]
        srv.stop()
        srv.start()
        ids = vote(srv, "AAPL")  # held long already: consumed, suppressed, no new trade
        wait_until(lambda: consumed(srv), timeout=60)
        now = state(srv)
        assert now == kept, (now, kept)
        assert decided(srv, ids) is None
        for p in (a, b):
            assert p.p.poll() is None, p.text()
            assert p.text().count("starting a new collective") <= 1
        assert "restored 0 agents" not in b.text()
    finally:
        b.stop()
        a.stop()


def test_restart_with_a_standby_without_persistence_rewrites_the_state(tmp_path, server):
    """Before: the standby won the lease on the empty Redis, restored 0 agents, 0 decisions,
    0 open positions, and the state was gone."""
    register(server)
    a = engine(tmp_path, server, "a")
    a.wait_for("active:")
    b = engine(tmp_path, server, "b")
    try:
        b.wait_for("standing by:")
        assert "Redis persistence: NONE" in a.text()
        open_a_position(server, "AAPL")
        kept = state(server)
        server.stop()
        server.start()
        a.wait_for("wrote this engine's state back", timeout=30)
        wait_until(lambda: state(server) == kept, timeout=60)
        # and it carries on: a new decision on another asset
        open_a_position(server, "MSFT")
        after = state(server)
        assert after["positions"] == ["AAPL", "MSFT"] and after["marker"] == kept["marker"]
        assert set(kept["decisions"]) < set(after["decisions"])
        assert b.p.poll() is None, b.text()
        assert "starting a new collective" not in b.text()
        assert "restored" not in b.text()  # the standby never took over with nothing
    finally:
        b.stop()
        a.stop()


def test_a_standby_alone_never_starts_from_nothing_after_a_wipe(tmp_path, server):
    """The active engine dies, Redis restarts empty: the standby, which knew the state,
    says so loudly and waits instead of starting a new, empty collective."""
    register(server)
    a = engine(tmp_path, server, "a")
    a.wait_for("active:")
    b = engine(tmp_path, server, "b", "--lease-ms", "1000")
    try:
        b.wait_for("standing by:")
        open_a_position(server, "AAPL")
        a.kill9()
        server.stop()
        server.start()
        b.wait_for("will not start from nothing", timeout=30)
        assert "starting a new collective" not in b.text()
        assert client(server).get(f"{NS}:state-marker") is None
        assert b.p.poll() is None
    finally:
        b.stop()
