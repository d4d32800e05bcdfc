"""The README's multi-process quick start shows life at once; the long-running commands'
--json (JSON Lines), heartbeats, dead-letter lines and the consensus live view's counters.
Needs RAWE_TEST_REDIS_URL (CI sets it)."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.procs import Proc, rawe_out
from tests.pty_screen import PtyRawe


@pytest.fixture
def env(redis_url: str, namespace: str) -> dict[str, str]:
    return {"RAWE_REDIS_URL": redis_url, "RAWE_NAMESPACE": namespace}


def test_the_readme_quick_start_shows_a_proposal_and_a_decision(tmp_path, env) -> None:
    cons = Proc(["consensus"], tmp_path / "cons.log", env)  # as the README writes them
    try:
        cons.wait_for("active:")
        started = time.monotonic()
        agents = Proc(["agents", "--agents", "5"], tmp_path / "agents.log", env)
        try:
            agents.wait_for("proposal ", timeout=30)
            assert time.monotonic() - started < 30
            cons.wait_for("decision d-", timeout=max(1.0, 60 - (time.monotonic() - started)))
            agents.wait_for("heartbeat: ", timeout=10)
        finally:
            assert agents.stop() == 130
    finally:
        assert cons.stop() == 130
    assert re.search(r"heartbeat: [\d,]+ ticks \(event time \d\d:\d\d:\d\dZ\), [\d,]+ "
                     r"signals, [\d,]+ proposals", agents.text())
    assert re.search(r"agents stopped after [\d,]+ ticks, [\d,]+ signals, [\d,]+ proposals",
                     agents.text())
    # log lines carry a time of day with its zone
    assert re.search(r"^\d\d:\d\d:\d\dZ decision d-", cons.text(), re.MULTILINE)


def test_the_consensus_live_view_counts_what_it_consumed(tmp_path, env) -> None:
    term = PtyRawe(["consensus"], cols=120, rows=35, env=env)
    agents = None
    try:
        term.wait_screen(lambda ls: "RAWE consensus" in ls[0], timeout=30)
        agents = Proc(["agents", "--agents", "5", "--speed", "200", "-q"],
                      tmp_path / "agents.log", env)

        def counted(lines: list[str]) -> bool:
            m = re.search(r"proposals ([\d,]+)", " ".join(lines[:2]))
            return m is not None and int(m.group(1).replace(",", "")) > 0

        lines = term.wait_screen(counted, timeout=60)
    finally:
        if agents is not None:
            agents.stop()
        code = term.interrupt()
    assert "signals 0" not in " ".join(lines[:2])  # the engine does not see the signals
    assert code == 130
    assert "consensus stopped; state saved" in term.text()


def test_dead_lettered_proposals_are_logged(tmp_path, env, redis_url, namespace) -> None:
    import redis

    cons = Proc(["consensus", "--no-dashboard"], tmp_path / "cons.log", env)
    r = redis.Redis.from_url(redis_url)
    try:
        cons.wait_for("active:")
        r.xadd(f"{namespace}:proposals", {"data": "{not json"})
        text = cons.wait_for("dead-lettered 1 proposal(s)", timeout=15)
    finally:
        cons.stop()
        r.close()
    assert "bad JSON" in text and f"redis-cli XRANGE {namespace}:deadletter - +" in text


def test_agents_json_lines(env) -> None:
    proc = rawe_out("agents", "--agents", "5", "--ticks", "300", "--speed", "1000", "--json",
                    env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"log", "proposal", "stopped"} <= kinds
    assert events[-1]["event"] == "stopped" and events[-1]["ticks"] == 300
    p = next(e for e in events if e["event"] == "proposal")
    assert {"id", "agent", "asset", "direction", "size", "timestamp"} <= set(p)
    assert all(isinstance(e["time"], float) for e in events)


def test_consensus_json_lines(env) -> None:
    proc = rawe_out("consensus", "--json", "--duration", "2", env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any(e["event"] == "log" and e["message"].startswith("active:") for e in events)
    assert events[-1]["event"] == "stopped" and events[-1]["saved"] is True


def test_doctor_json() -> None:
    proc = rawe_out("doctor", "--json", "--redis-url", "redis://127.0.0.1:1/0",
                    env={"APCA_API_KEY_ID": "", "APCA_API_SECRET_KEY": ""})
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    redis_check = doc["checks"][0]
    assert redis_check["name"] == "redis" and redis_check["status"] == "FAIL"
    assert "cannot reach Redis" in redis_check["detail"]
