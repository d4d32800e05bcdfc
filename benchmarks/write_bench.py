"""What Redis spends on one fenced write of the engine, and on which part of it.

    python benchmarks/write_bench.py [--proposals 6000] [--calls 60] [--redis-url URL]

Drains a stream filled as `apply_bench.py` fills it (a decision per three proposals) through
the real ProposalConsumer (pipelined, COUNT 2000) and keeps the largest fenced write it sent.
That write is then sent again `--calls` times, each way below, without a fencing token; Redis'
own CPU (`INFO cpu`) and `INFO commandstats` (usec per EVALSHA) are read around each:

* `write`: the script as the engine runs it (JSON body read with cjson, ledger entries as
  arguments);
* `msgpack body`: the same with the body as MessagePack, read with cmsgpack;
* `cjson only`: a script that decodes the body and returns;
* `empty script`: the same arguments to a script that returns at once (the cost of turning
  the arguments into Lua strings).

The namespace `apb-<random>` is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apply_bench

import rawe_cli.bus.store as store_module
from rawe_cli.bus import streams

Captured = tuple[list[Any], list[Any], list[Any]]


def capture(a: argparse.Namespace) -> tuple[Captured, str]:
    """The largest write of a pipelined drain (commands, seen ids, raw commands)."""
    writes: list[Captured] = []
    original = store_module.fenced_write

    async def keep(client: Any, keys: Any, token: Any, commands: Any, *, seen: Any = (),
                   raw: Any = (), verify: bool = False) -> None:
        writes.append((list(commands), list(seen), list(raw)))
        writes_ns.append(keys.namespace)
        await original(client, keys, token, commands, seen=seen, raw=raw, verify=verify)

    writes_ns: list[str] = []
    store_module.fenced_write = keep  # type: ignore[assignment]
    try:
        drain = argparse.Namespace(redis_url=a.redis_url, proposals=a.proposals, profile="",
                                   count=2000, pipelined=True)
        asyncio.run(apply_bench.run(drain))
    finally:
        store_module.fenced_write = original
    best = max(range(len(writes)), key=lambda i: sum(len(g[2]) for g in writes[i][1]))
    return writes[best], writes_ns[best]


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--proposals", type=int, default=6000)
    ap.add_argument("--calls", type=int, default=60)
    a = ap.parse_args()
    a.proposals -= a.proposals % 3
    (commands, seen, raw), ns = capture(a)
    r = redis.Redis.from_url(a.redis_url)
    keys = [f"{ns}:fence", f"{ns}:fence_epoch", f"{ns}:marker", f"{ns}:seen:buckets"]
    raw_args: list[Any] = []
    for cmd in raw:
        raw_args += [str(len(cmd)), *cmd]
    as_json = ["", "", streams._body(seen, commands), *raw_args]
    as_msgpack = ["", "", msgspec.msgpack.encode((seen, commands)), *raw_args]
    msgpack_script = streams._FENCED_WRITE.replace("cjson.decode(ARGV[3])",
                                                   "cmsgpack.unpack(ARGV[3])")
    ways = [("write", streams._FENCED_WRITE, as_json),
            ("msgpack body", msgpack_script, as_msgpack),
            ("cjson only", "local b = cjson.decode(ARGV[3]) return 1", as_json),
            ("empty script", "return 1", as_json)]
    n = sum(len(g[2]) for g in seen) // 2
    size = sum(len(w) for w in as_json if isinstance(w, str | bytes))
    print(f"one write: {n:,} proposals, {len(raw)} raw commands, {size:,} bytes of arguments")
    print("| way | Redis CPU ms per write | EVALSHA usec per call |")
    print("|---|---:|---:|")
    try:
        for name, script, args in ways:
            sha = r.script_load(script)
            r.config_resetstat()
            c0 = redis_cpu(r)
            for _ in range(a.calls):
                r.evalsha(sha, len(keys), *keys, *args)
            cpu = (redis_cpu(r) - c0) / a.calls * 1e3
            usec = r.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]
            print(f"| {name} | {cpu:.2f} | {usec:,.0f} |")
    finally:
        for key in r.scan_iter(match=f"{ns}:*", count=1000):
            r.delete(key)
        r.close()


if __name__ == "__main__":
    main()
