"""Whole runs of the collective (rawe run), embedded and through the CLI."""

import asyncio
import json
import subprocess

import pytest

from rawe_cli.app.runtime import RunOptions, run_embedded
from rawe_cli.config import Settings, load_personalities, pick_agents
from tests.conftest import rawe_cmd


def run(ticks=2000, seed=7, agents=5, redis_url=None, **settings):
    s = Settings(seed=seed, **settings)
    opts = RunOptions(settings=s, personalities=pick_agents(load_personalities(None), agents,
                                                            seed), ticks=ticks, fast=True,
                      redis_url=redis_url)
    return asyncio.run(run_embedded(opts))


@pytest.fixture(scope="module")
def result():
    # winrate: on the 5-second world costs are large against the noise, and the default
    # (meta) rightly abstains from most candidates; these tests are about the mechanics
    return run(scheme="winrate")


def test_the_default_run_decides_and_says_why_it_skips():
    r = run(ticks=1500)
    assert r["stats"]["bar_seconds"] == 5.0 and r["decisions"]
    skipped = [d for d in r["decisions"] if d["status"] == "skipped"]
    assert all(d["reason"] for d in skipped)
    assert any(d["reason"].startswith("meta: ") for d in skipped) or len(skipped) == 0


def test_a_run_decides_trades_closes_and_learns(result):
    assert result["stats"]["ticks"] == 2000
    assert len(result["decisions"]) >= 10
    closed = [d for d in result["decisions"] if d["status"] == "closed"]
    assert len(closed) >= 10
    assert all(d["pnl"] is not None for d in closed)
    weights = [a["weight"] for a in result["agents"]]
    assert any(abs(w - 1.0) > 1e-9 for w in weights)
    assert sum(a["wins"] + a["losses"] for a in result["agents"]) > 0
    for d in result["decisions"]:
        assert d["id"].startswith("d-") and d["agents"] and d["direction"] in ("long", "short")
        assert 0 < d["size"] <= 1


def test_accounting_adds_up(result):
    pf = result["portfolio"]
    closed_pnl = sum(d["pnl"] for d in result["decisions"] if d["pnl"] is not None)
    assert pf["realized_pnl"] == pytest.approx(closed_pnl, abs=1e-6)
    assert pf["equity"] == pytest.approx(100_000 + pf["realized_pnl"] + pf["unrealized_pnl"])
    agent_pnl = sum(a["pnl"] for a in result["agents"])
    assert agent_pnl == pytest.approx(pf["realized_pnl"], abs=1e-6)
    assert pf["closed_positions"] == len([d for d in result["decisions"] if d["pnl"] is not None])


def test_winrate_weights_follow_the_records(result):
    raw = {}
    for a in result["agents"]:
        n = a["wins"] + a["losses"]
        raw[a["name"]] = 1.0 if n == 0 else 0.5 + a["wins"] / n
    mean = sum(raw.values()) / len(raw)  # weights are normalised to a mean of 1
    for a in result["agents"]:
        assert a["weight"] == pytest.approx(raw[a["name"]] / mean)


def test_majority_scheme_keeps_weights_at_one():
    r = run(ticks=600, scheme="majority")
    assert all(a["weight"] == 1.0 for a in r["agents"])


def test_relative_threshold_scales_with_agents():
    r = run(ticks=600, agents=10, threshold_share=0.3)
    assert r["decisions"]
    assert all(d["threshold"] == pytest.approx(0.3 * 10, rel=0.5) for d in r["decisions"])


def test_cli_json_is_deterministic_for_a_seed(tmp_path):
    args = ("run", "--agents", "5", "--ticks", "400", "--seed", "3", "--fast", "--json")
    a = subprocess.run(rawe_cmd(*args), capture_output=True, text=True, timeout=120)
    b = subprocess.run(rawe_cmd(*args), capture_output=True, text=True, timeout=120)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    doc = json.loads(a.stdout)
    assert {"decisions", "agents", "portfolio"} <= set(doc)
    for key in ("realized_pnl", "unrealized_pnl", "equity", "open_positions"):
        assert key in doc["portfolio"]
    for agent in doc["agents"]:
        assert {"name", "weight", "wins", "losses", "pnl"} <= set(agent)


def test_cli_plain_log_lines(tmp_path):
    proc = subprocess.run(rawe_cmd("run", "--ticks", "800", "--fast", "--no-dashboard"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "decision d-" in proc.stdout and "closed d-" in proc.stdout
    assert "Summary" in proc.stdout


def test_more_agents_than_personalities(tmp_path):
    r = run(ticks=300, agents=8)
    names = [a["name"] for a in r["agents"]]
    assert len(names) == 8 and any(n.endswith("#2") for n in names)


def test_run_on_a_real_redis_persists_state(redis_url, namespace):
    import redis

    r = run(ticks=600, redis_url=redis_url, namespace=namespace)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stored = client.hgetall(f"{namespace}:agents")
    assert set(stored) == {a["name"] for a in r["agents"]}
    assert client.zcard(f"{namespace}:decisions:index") == len(r["decisions"])
    # a second run on the same Redis carries on from the stored weights
    r2 = run(ticks=10, redis_url=redis_url, namespace=namespace)
    before = {a["name"]: (a["wins"], a["losses"]) for a in r["agents"]}
    after = {a["name"]: (a["wins"], a["losses"]) for a in r2["agents"]}
    assert all(after[n][0] >= before[n][0] and after[n][1] >= before[n][1] for n in before)
    assert len(r2["decisions"]) >= len(r["decisions"])
    client.close()
