"""A private 3-node Redis Cluster on free loopback ports (no replicas, no persistence), for
the sharding tests. Every node is a child process of the test, killed in `stop`; every wait
polls for its condition with a generous limit."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.procs import wait_until

needs_cluster_tools = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="no redis-server / redis-cli binary")


class LocalCluster:
    def __init__(self, directory: Path, nodes: int = 3) -> None:
        self.dir = directory
        self.ports = [free_port() for _ in range(nodes)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def _cli(self, port: int, *args: str) -> str:
        try:
            out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                                 text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return out.stdout

    def _ok(self) -> bool:
        return all("cluster_state:ok" in self._cli(p, "cluster", "info") for p in self.ports)

    def start(self) -> None:
        for port in self.ports:
            node = self.dir / f"node-{port}"
            node.mkdir(parents=True, exist_ok=True)
            # the cluster bus port explicitly (the default, port + 10000, may not exist)
            self.procs.append(subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                 "--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf"),
                 "--cluster-port", str(free_port()), "--save", "", "--appendonly", "no",
                 "--dir", str(node), "--logfile", str(node / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            wait_until(lambda port=port: "PONG" in self._cli(port, "ping"), timeout=30,
                       every=0.05)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        wait_until(self._ok, timeout=60, every=0.1)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs = []

    def cli(self, *args: str) -> str:
        """One command through any node, following the cluster's redirects."""
        return self._cli(self.ports[0], "-c", *args).strip()

    def keys_per_node(self) -> dict[int, list[str]]:
        return {p: self._cli(p, "--scan").split() for p in self.ports}
