"""Shared fixtures: a real Redis (URL from RAWE_TEST_REDIS_URL) with a private namespace."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.redis_server import RedisServer


ROOT = Path(__file__).resolve().parent.parent
REDIS_ENV = "RAWE_TEST_REDIS_URL"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def _redis_url() -> str:
    return os.environ.get(REDIS_ENV, DEFAULT_REDIS)


def _reachable(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        ok = bool(client.ping())
        client.close()
        return ok
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis server's URL. Required (fails, never skips) when RAWE_REQUIRE_REDIS or CI
    is set; elsewhere a test needing it is skipped with the reason."""
    url = _redis_url()
    if not _reachable(url):
        if os.environ.get("RAWE_REQUIRE_REDIS") or os.environ.get("CI"):
            pytest.fail(f"Redis at {url} does not answer, and Redis tests must run here")
        pytest.skip(f"no Redis at {url} (set {REDIS_ENV})")
    return url


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted afterwards."""
    import redis

    ns = f"rawe-test-{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    keys = [k for pattern in (f"{ns}:*", f"{{{ns}*")  # sharded keys: {ns}:..., {ns:KofN}:...
            for k in client.scan_iter(match=pattern, count=1000)]
    if keys:
        client.delete(*keys)
    client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rawe_cmd(*args: str) -> list[str]:
    """The rawe command as a subprocess argv, with this interpreter."""
    return [sys.executable, "-m", "rawe_cli", *args]


def run_async(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free loopback port (stop and restart it freely)."""
    from tests.redis_server import RedisServer

    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    if srv.up():
        srv.stop()
