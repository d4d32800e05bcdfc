"""Separate processes around the real Redis: consensus, agents, inject-signal, weights,
decisions; kill -9, failover, dead letters. Needs RAWE_TEST_REDIS_URL (CI sets it)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.procs import Proc, rawe_json, rawe_out, wait_until

FAST_PERSONALITIES = """
personalities:
  - name: Fast Follower
    trusts: [narrative_leads, narrative_exhaustion]
    min_strength: 0.3
    min_confidence: 0.3
    holding_horizon: 6
    cooldown: 1
  - name: Fast Leader
    trusts: [narrative_leads, narrative_exhaustion]
    min_strength: 0.3
    min_confidence: 0.3
    holding_horizon: 5
    cooldown: 1
  - name: Fast Fader
    trusts: [narrative_exhaustion, narrative_leads]
    stance: fade
    min_strength: 0.3
    min_confidence: 0.3
    holding_horizon: 7
    cooldown: 1
"""
HANDS = ["Ann", "Bob", "Cy"]


@pytest.fixture
def env(redis_url: str, namespace: str) -> dict[str, str]:
    return {"RAWE_REDIS_URL": redis_url, "RAWE_NAMESPACE": namespace}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    p = tmp_path / "fast.yaml"
    p.write_text(FAST_PERSONALITIES)
    s = tmp_path / "settings.yaml"
    # --speed 8: the agents' event time runs ahead of the wall clock (clock_tolerance)
    s.write_text("tick_seconds: 1.0\nthreshold: 2.0\nwindow: 10\nsymbols: [AAPL, MSFT, NVDA]\n"
                 "clock_tolerance: 1d\n")
    return {"personalities": str(p), "settings": str(s)}


def inject(env: dict[str, str], agent: str, asset: str = "AAPL", direction: str = "long",
           register: bool = True, count: int = 1) -> list[str]:
    args = ["inject-signal", "--asset", asset, "--direction", direction, "--agent", agent,
            "--count", str(count), "--json"]
    if register:
        args.append("--register")
    return rawe_json(*args, env=env)  # type: ignore[return-value]


def consensus(tmp_path: Path, env: dict[str, str], name: str, *extra: str) -> Proc:
    # Without a settings file: an absolute threshold of 3 votes and a 10 s window, so that
    # hand-injected votes from agents registered one by one decide only at the third (the
    # default relative threshold would let the first registered agent decide alone).
    rules = [] if "-c" in extra else ["--threshold", "3", "--window", "10s"]
    return Proc(["consensus", "--no-dashboard", *rules, *extra], tmp_path / f"{name}.log",
                env)


def read_all(env: dict[str, str], live: int) -> bool:
    """The engine has read every proposal on the stream, and `live` are left pending (live
    votes): a condition to poll for instead of sleeping."""
    import redis

    r = redis.Redis.from_url(env["RAWE_REDIS_URL"], decode_responses=True)
    stream = f"{env['RAWE_NAMESPACE']}:proposals"
    try:
        last = r.xrevrange(stream, count=1)
        group = {g["name"]: g for g in r.xinfo_groups(stream)}.get("consensus")
        return bool(last and group and group["last-delivered-id"] == last[0][0]
                    and group["pending"] == live)
    except redis.ResponseError:
        return False
    finally:
        r.close()


def decisions(env: dict[str, str]) -> list[dict]:
    return rawe_json("decisions", "--json", "--limit", "1000", env=env)  # type: ignore


def test_agents_and_consensus_processes_trade_and_learn(tmp_path, env, files):
    cons = consensus(tmp_path, env, "cons", "-c", files["settings"])
    cons.wait_for("active:")
    agents = Proc(["agents", "-n", "3", "-p", files["personalities"], "-c", files["settings"],
                   "--speed", "8", "--seed", "5", "-q"], tmp_path / "agents.log", env)
    try:
        closed = wait_until(lambda: [d for d in decisions(env) if d["status"] == "closed"],
                            timeout=60)
        assert closed[0]["pnl"] is not None
        weights = rawe_json("weights", "--json", env=env)
        assert {w["name"] for w in weights} == {"Fast Follower", "Fast Leader", "Fast Fader"}
        assert any(w["wins"] + w["losses"] > 0 for w in weights)  # the P&L came back
        # weights are normalised to a mean of 1 (all three on one side of a trade keep 1.0)
        assert sum(w["weight"] for w in weights) == pytest.approx(3.0)
        for w in weights:
            assert {"name", "weight", "wins", "losses", "pnl"} <= set(w)
        for d in decisions(env):
            assert {"id", "asset", "direction", "size", "agents", "status"} <= set(d)
    finally:
        agents.stop()
        assert cons.stop() == 130  # stopped by Ctrl-C, cleanly
    assert "consensus stopped; state saved" in cons.text()


def test_three_injections_from_three_agents_decide(tmp_path, env):
    cons = consensus(tmp_path, env, "cons")
    cons.wait_for("active:")
    try:
        ids = [inject(env, a)[0] for a in HANDS]
        assert len(set(ids)) == 3
        got = wait_until(lambda: decisions(env), timeout=60)
        d = got[0]
        assert d["asset"] == "AAPL" and d["direction"] == "long"
        assert sorted(d["agents"]) == HANDS
        assert sorted(d["proposal_ids"]) == sorted(ids)
        assert d["status"] == "skipped" and "no price" in d["reason"]  # nobody feeds prices
    finally:
        cons.stop()


def test_two_injections_do_not_decide_and_same_agent_counts_once(tmp_path, env):
    cons = consensus(tmp_path, env, "cons")
    cons.wait_for("active:")
    try:
        inject(env, "Ann")
        inject(env, "Bob", count=3)  # one live vote per agent and asset
        wait_until(lambda: read_all(env, live=2), timeout=20)
        assert decisions(env) == []
    finally:
        cons.stop()


def test_kill9_and_restart_loses_no_vote_and_trades_once(tmp_path, env):
    first = consensus(tmp_path, env, "first")
    first.wait_for("active:")
    inject(env, "Ann")
    inject(env, "Bob")
    wait_until(lambda: read_all(env, live=2), timeout=20)  # both live votes, no decision
    first.kill9()
    second = consensus(tmp_path, env, "second", "--lease-ms", "1000")
    try:
        second.wait_for("active:", timeout=15)
        second.wait_for("reclaimed 2 pending proposals")
        inject(env, "Cy")
        got = wait_until(lambda: decisions(env), timeout=60)
        assert len(got) == 1
        assert sorted(got[0]["agents"]) == HANDS  # the two votes from before the crash count
        wait_until(lambda: read_all(env, live=0), timeout=20)
        assert len(decisions(env)) == 1
    finally:
        second.stop()
    third = consensus(tmp_path, env, "third", "--duration", "3")
    third.wait_for("restored 3 agents, 1 decisions")
    third.p.wait(20)
    assert len(decisions(env)) == 1  # a restart replays nothing twice


def test_standby_takes_over_within_the_lease(tmp_path, env):
    a = consensus(tmp_path, env, "a", "--lease-ms", "1000")
    a.wait_for("active:")
    b = consensus(tmp_path, env, "b", "--lease-ms", "1000")
    try:
        b.wait_for("standing by:")
        inject(env, "Ann")
        inject(env, "Bob")
        wait_until(lambda: read_all(env, live=2), timeout=20)
        a.kill9()
        killed = time.monotonic()
        b.wait_for("active:", timeout=10)
        took = time.monotonic() - killed
        assert took < 1.0 + 1.0  # lease time plus polling
        inject(env, "Cy")
        got = wait_until(lambda: decisions(env), timeout=60)
        assert len(got) == 1 and sorted(got[0]["agents"]) == HANDS
        token = int(b.text().split("fencing token ")[1].split(",")[0])
        assert token >= 2
    finally:
        b.stop()


def test_malformed_unknown_and_forged_messages_are_dead_lettered(tmp_path, env, redis_url,
                                                                 namespace):
    import redis

    from rawe_cli.bus.codec import sign

    env = {**env, "RAWE_BUS_SECRET": "team-secret"}
    cons = consensus(tmp_path, env, "cons")
    cons.wait_for("active:")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = f"{namespace}:proposals"
    now = time.time()
    good = {"id": "x", "agent": "Ann", "asset": "AAPL", "direction": "long", "size": 0.1,
            "timestamp": now}
    try:
        inject(env, "Ann")  # registers Ann (signed with the secret)

        def signed(data: str) -> dict[str, str]:
            return {"data": data, "sig": sign(data, "team-secret")}

        r.xadd(stream, signed("{not json"))
        r.xadd(stream, {"nodata": "1", "sig": sign("", "team-secret")})
        r.xadd(stream, signed(json.dumps({**good, "id": "neg", "size": -1})))
        r.xadd(stream, signed(json.dumps({**good, "id": "nan"}).replace("0.1", "NaN")))
        r.xadd(stream, signed(json.dumps({**good, "id": "dir", "direction": "up"})))
        r.xadd(stream, signed(json.dumps({**good, "id": "fut", "timestamp": now + 86400})))
        r.xadd(stream, signed(json.dumps({k: v for k, v in good.items() if k != "asset"})))
        r.xadd(stream, {"data": json.dumps({**good, "id": "unsigned"})})
        r.xadd(stream, {"data": json.dumps({**good, "id": "forged"}), "sig": "00" * 32})
        dead = wait_until(lambda: len(r.xrange(f"{namespace}:deadletter")) >= 9 and
                          r.xrange(f"{namespace}:deadletter"), timeout=60)
        reasons = " | ".join(f["reason"] for _, f in dead)
        for needle in ("bad JSON", "missing field 'data'", "field 'size' must be > 0",
                       "must be finite", "field 'direction'", "in the future",
                       "missing field 'asset'", "unsigned proposal", "bad signature"):
            assert needle in reasons
        # an unregistered agent, correctly signed, is rejected too
        rawe_out("inject-signal", "--asset", "AAPL", "--direction", "long", "--agent",
                 "Nobody", env=env)
        # the engine is still running and still decides
        for a in ("Bob", "Cy"):
            inject(env, a)
        got = wait_until(lambda: decisions(env), timeout=60)
        assert sorted(got[0]["agents"]) == HANDS
        assert r.xpending(stream, "consensus")["pending"] == 0  # all consumed or acked
    finally:
        cons.stop()
        r.close()


def test_unregistered_agent_signed_proposal_is_dead_lettered(tmp_path, env, redis_url,
                                                             namespace):
    import redis

    from rawe_cli.bus import codec
    from rawe_cli.models import Direction, Proposal

    cons = consensus(tmp_path, env, "cons")
    cons.wait_for("active:")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        p = Proposal("ghost-1", "Ghost", "AAPL", Direction.LONG, 0.1, 0.0, 0.5, "", "manual",
                     time.time())
        r.xadd(f"{namespace}:proposals", codec.encode_proposal(p))
        dead = wait_until(lambda: r.xrange(f"{namespace}:deadletter"), timeout=60)
        assert "agent 'Ghost' is not registered" in dead[0][1]["reason"]
    finally:
        cons.stop()
        r.close()


@pytest.mark.parametrize("command", [
    ["consensus", "--no-dashboard"], ["agents", "--ticks", "1"], ["weights"], ["decisions"],
    ["inject-signal", "--asset", "AAPL", "--direction", "long"],
])
def test_unreachable_redis_is_one_line(command):
    proc = rawe_out(*command, env={"RAWE_REDIS_URL": "redis://127.0.0.1:1/0"}, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip() == proc.stderr.strip().splitlines()[0]
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_inject_signal_bad_input(env):
    for args, needle, code in (
        (["--direction", "up"], "--direction must be long or short", 2),
        (["--direction", "long", "--size", "2"], "--size must be in (0, 1]", 2),
        (["--direction", "long", "--agent", "Nobody"], "agent 'Nobody' is not registered", 1),
    ):
        proc = rawe_out("inject-signal", "--asset", "AAPL", *args, env=env)
        assert proc.returncode == code and needle in proc.stderr
        assert "Traceback" not in proc.stderr
