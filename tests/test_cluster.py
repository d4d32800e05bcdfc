"""Two shard engines and the agents on a local 3-node Redis Cluster (redis-server
--cluster-enabled yes, redis-cli --cluster create), through `redis+cluster://` URLs: every
fenced script runs on one node because a shard's keys share a hash tag. Runs wherever
redis-server and redis-cli exist (they do in CI)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.procs import Proc, rawe_json, wait_until
from tests.redis_cluster import LocalCluster, needs_cluster_tools
from tests.test_processes import FAST_PERSONALITIES

SETTINGS = ("tick_seconds: 1.0\nthreshold: 2.0\nwindow: 10\nclock_tolerance: 1d\n"
            # crc32 mod 2: AAPL and AMZN on shard 0, MSFT and NVDA on shard 1
            "symbols: [AAPL, AMZN, MSFT, NVDA]\n")


@needs_cluster_tools
@pytest.mark.timeout(300)  # a cluster to create and tear down, three processes
def test_two_shards_and_agents_on_a_redis_cluster(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster")
    procs: list[Proc] = []
    try:
        cluster.start()
        env = {"RAWE_REDIS_URL": cluster.url, "RAWE_NAMESPACE": "ct"}
        (tmp_path / "s.yaml").write_text(SETTINGS)
        (tmp_path / "p.yaml").write_text(FAST_PERSONALITIES)
        settings = str(tmp_path / "s.yaml")
        engines = [Proc(["consensus", "--no-dashboard", "--shard", f"{k}/2", "-c", settings],
                        tmp_path / f"shard{k}.log", env) for k in (0, 1)]
        procs += engines
        for e in engines:
            e.wait_for("listening:")
        agents = Proc(["agents", "-n", "3", "-p", str(tmp_path / "p.yaml"), "-c", settings,
                       "--speed", "8", "--seed", "5", "-q"], tmp_path / "agents.log", env)
        procs.append(agents)
        # the agents take the shard count the engines recorded
        agents.wait_for("sharded: publishing each proposal to its asset's shard of 2")
        # hand-made votes on one asset of each shard: a decision on both, whatever the world
        for who in ("Ann", "Bob"):
            for asset in ("AAPL", "MSFT"):
                rawe_json("inject-signal", "--asset", asset, "--direction", "long", "--agent",
                          who, "--register", "--json", env=env)

        def by_shard() -> Counter[int]:
            rows = rawe_json("decisions", "--json", "--limit", "1000", env=env)
            return Counter(d["shard"] for d in rows)  # type: ignore[union-attr]

        got = wait_until(lambda: (c := by_shard())[0] and c[1] and c, timeout=60)
        assert set(got) == {0, 1}
        for e in engines:  # each engine decided only on its own assets
            lines = [x for x in e.text().splitlines() if " decision d-" in x]
            assert lines
            mine = {"AAPL", "AMZN"} if e is engines[0] else {"MSFT", "NVDA"}
            assert all(x.split()[3] in mine for x in lines), lines
        # the agents' own proposals reach the shards' streams too (4 were injected)
        def published() -> int:
            return sum(int(cluster.cli("xlen", f"{{ct:{k}of2}}:proposals") or 0)
                       for k in (0, 1))

        wait_until(lambda: published() > 4, timeout=60)
        weights = rawe_json("weights", "--json", env=env)
        names = {w["name"] for w in weights}  # type: ignore[union-attr]
        assert {"Fast Follower", "Fast Leader", "Fast Fader", "Ann", "Bob"} <= names
        assert all(len(w["shard_weights"]) == 2 for w in weights)  # type: ignore[union-attr]
        # a shard's keys live in one slot, on one node; the collective's keys in another
        located: dict[str, set[int]] = {}
        for port, keys in cluster.keys_per_node().items():
            for key in keys:
                located.setdefault(key.split("}")[0] + "}", set()).add(port)
        assert {"{ct:0of2}", "{ct:1of2}", "{ct}"} <= set(located)
        assert all(len(ports) == 1 for ports in located.values()), located
        agents.stop()
        for e in engines:
            assert e.stop() == 130
            assert "consensus stopped; state saved" in e.text()
    finally:
        for p in procs:
            if p.p.poll() is None:
                p.p.kill()
                p.p.wait(10)
        cluster.stop()
