"""Two shard engines (`rawe consensus --shard K/N`) as processes around the shared Redis:
each decides on its own assets, the agents learn from both shards' P&L exactly once (also
across a restart), a misrouted proposal is dead-lettered, and a shard count that disagrees
with the one Redis records is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rawe_cli.bus.codec import encode_proposal
from rawe_cli.models import Direction, Proposal
from rawe_cli.shards import outcome_increments
from tests.procs import Proc, rawe_json, rawe_out, wait_until
from tests.test_cluster import SETTINGS
from tests.test_processes import FAST_PERSONALITIES


@pytest.fixture
def env(redis_url: str, namespace: str) -> dict[str, str]:
    return {"RAWE_REDIS_URL": redis_url, "RAWE_NAMESPACE": namespace}


def engine(tmp_path: Path, env: dict[str, str], k: int, *extra: str, log: str = "") -> Proc:
    return Proc(["consensus", "--no-dashboard", "--shard", f"{k}/2", *extra],
                tmp_path / (log or f"shard{k}.log"), env)


def decisions(env: dict[str, str]) -> list[dict]:
    return rawe_json("decisions", "--json", "--limit", "1000", env=env)  # type: ignore


def expected_tallies(rows: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in rows:
        if d["status"] == "closed":
            for k, v in outcome_increments(d["agents"], d["weights"], d["opponents"],
                                           d["pnl"]).items():
                out[k] = out.get(k, 0) + v
    return out


def tallies(env: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for w in rawe_json("weights", "--json", env=env):  # type: ignore[union-attr]
        for f in ("wins", "losses", "pnl"):
            if w[f]:
                out[f"{f}:{w['name']}"] = w[f]
    return out


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-6 for k in a)


@pytest.mark.timeout(300)  # its waits (closes on both shards, on a loaded machine) add up
def test_two_shards_decide_their_own_assets_and_learn_from_both(tmp_path, env):
    (tmp_path / "s.yaml").write_text(SETTINGS)
    (tmp_path / "p.yaml").write_text(FAST_PERSONALITIES)
    settings = str(tmp_path / "s.yaml")
    engines = [engine(tmp_path, env, k, "-c", settings) for k in (0, 1)]
    agents = None
    try:
        for e in engines:
            e.wait_for("listening:")
        agents = Proc(["agents", "-n", "3", "-p", str(tmp_path / "p.yaml"), "-c", settings,
                       "--speed", "16", "--seed", "5", "-q"], tmp_path / "agents.log", env)

        def closed_on_both() -> bool:
            shards = {d["shard"] for d in decisions(env) if d["status"] == "closed"}
            return shards == {0, 1}

        wait_until(closed_on_both, timeout=120, every=0.5)
        agents.stop()
        # every closed position of both shards, in the agents' records, once
        wait_until(lambda: same(tallies(env), expected_tallies(decisions(env))), timeout=60)
        for e in engines:
            mine = {"AAPL", "AMZN"} if e is engines[0] else {"MSFT", "NVDA"}
            assert {d["asset"] for d in decisions(env)
                    if d["shard"] == engines.index(e)} <= mine
        # a restart of both shards adds nothing (their outboxes are empty or already known)
        before = tallies(env)
        for e in engines:
            assert e.stop() == 130
        engines = [engine(tmp_path, env, k, "-c", settings, log=f"again{k}.log")
                   for k in (0, 1)]
        for e in engines:
            e.wait_for("listening:")
            e.wait_for("restored 3 agents")
        assert same(tallies(env), before)
        assert same(tallies(env), expected_tallies(decisions(env)))
    finally:
        if agents is not None:
            agents.stop()
        for e in engines:
            e.stop()


def test_misrouted_proposal_and_shard_counts_that_disagree(tmp_path, env, redis_url):
    import redis

    ns = env["RAWE_NAMESPACE"]
    eng = engine(tmp_path, env, 0, "--threshold", "3", "--window", "10s")
    try:
        eng.wait_for("listening:")
        for who in ("Ann", "Bob", "Cy"):  # AAPL is shard 0's
            rawe_json("inject-signal", "--asset", "AAPL", "--direction", "long", "--agent",
                      who, "--register", "--json", env=env)
        got = wait_until(lambda: decisions(env), timeout=60)
        assert got[0]["shard"] == 0 and got[0]["asset"] == "AAPL"
        # a proposal for MSFT (shard 1's) written by hand on shard 0's stream
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            import time

            p = Proposal("hand-1", "Ann", "MSFT", Direction.LONG, 0.05, 0.0, 0.5, "n",
                         "manual", time.time())
            r.xadd(f"{{{ns}:0of2}}:proposals", encode_proposal(p))
            eng.wait_for("dead-lettered 1 proposal(s) (1 asset 'MSFT' belongs to shard 1/2")
            dead = r.xrange(f"{{{ns}:0of2}}:deadletter")
            assert any("belongs to shard 1/2, not 0/2" in f["reason"] for _, f in dead)
        finally:
            r.close()
        # the namespace has 2 shards now: other counts are refused, in one line
        for args in (["consensus", "--shard", "0/3", "--duration", "1"],
                     ["consensus", "--duration", "1"],
                     ["inject-signal", "--asset", "AAPL", "--direction", "long", "--agent",
                      "Ann", "--shards", "3"],
                     ["agents", "-n", "1", "--ticks", "1", "--shards", "4"]):
            out = rawe_out(*args, env=env)
            err = out.stderr.strip()
            assert out.returncode == 1, (args, out.returncode, err)
            assert len(err.splitlines()) == 1 and "Traceback" not in err, err
            assert "shards" in err or "sharded into 2" in err, err
        assert json.loads(rawe_out("weights", "--json", env=env).stdout)[0]["shard_weights"]
    finally:
        eng.stop()
