"""Throughput of 1 and 2 shard engines on one Redis: aggregate proposals/s and CPU per
proposal per shard.

    python benchmarks/shard_bench.py [--redis-url redis://127.0.0.1:6379/0]
                                     [--proposals 60000] [--repeat 3] [--timeout 120]

For each shard count N (1, then 2) and each repeat, in a fresh namespace (`shb-<random>`,
deleted at the end; nothing else in the Redis is touched):

1. N `rawe consensus --shard K/N` subprocesses start (paper broker, threshold 3, window
   120 s) and say `listening:` on their empty streams;
2. the bench process publishes `--proposals` proposals in all (pipelined XADD, 500 a round
   trip), each to its asset's shard's stream (crc32 of the asset, as `rawe agents` does):
   groups of three agreeing proposals from three registered agents on one asset, so every
   third proposal completes a quorum and the shard decides (no bars: the decision is
   recorded as skipped "no price yet"; consensus, ledger and fenced persistence run, the
   broker does not);
3. timed from the first XADD until every shard's consumer group has read all its entries
   and nothing is pending (XINFO GROUPS, polled every 2 ms). The engines' CPU (user + sys
   from /proc) and Redis's (INFO cpu) are read over the same span.

The unsharded engine (no --shard, the `<ns>:...` keys) runs the same way first, for
comparison. Reported per N: aggregate proposals/s (median, min-max), engine CPU us per
proposal of each shard (its CPU / the proposals it handled), Redis CPU us per proposal. The
publisher runs in this process and shares the machine's cores with the engines and Redis: on
2 cores, 2 shards cannot show scale-out, which is why the CPU per proposal is reported too.
Decisions are checked: proposals / 3 over the shards' ledgers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from rawe_cli.bus import codec
from rawe_cli.bus.keys import CONSENSUS_GROUP, Keys
from rawe_cli.bus.streams import STREAM_MAXLEN
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.models import Direction, Proposal
from rawe_cli.shards import shard_of

ROOT = Path(__file__).resolve().parent.parent
AGENTS = 30  # 10 groups of 3
ASSETS = 400


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def proposals(total: int, keys: Keys, tag: str) -> dict[str, list[dict[str, str]]]:
    """The encoded proposals by shard stream (stamped now)."""
    now = time.time()
    out: dict[str, list[dict[str, str]]] = {}
    for i in range(total):
        k, j = divmod(i, 3)
        asset = f"{tag}-{k % ASSETS:04d}"
        p = Proposal(f"{tag}-{i}", f"shb-a{(k % (AGENTS // 3)) * 3 + j:02d}", asset,
                     Direction.LONG, 0.05, 0.01, 0.5, "bench", "manual", now)
        out.setdefault(keys.for_asset(asset).proposals, []).append(codec.encode_proposal(p))
    return out


def group(r: redis.Redis, stream: str) -> dict | None:
    try:
        for g in r.xinfo_groups(stream):
            if g["name"] == CONSENSUS_GROUP:
                return g
    except redis.ResponseError:
        return None
    return None


def one_run(a: argparse.Namespace, r: redis.Redis, n: int, logdir: Path) -> dict:
    ns = f"shb-{uuid.uuid4().hex[:8]}"
    keys = Keys(ns, n)  # n = 0: the unsharded engine (no --shard), for comparison
    if n:
        r.set(keys.shard_count, str(n))
    for i in range(AGENTS):
        r.hsetnx(keys.registry, f"shb-a{i:02d}",
                 json.dumps(AgentRecord(f"shb-a{i:02d}", "bench").to_dict()))
    engines, logs = [], []
    env = {k: v for k, v in os.environ.items() if k != "RAWE_BUS_SECRET"}
    count = max(n, 1)
    try:
        for k in range(count):
            log = open(logdir / f"{ns}-{k}.log", "w")  # noqa: SIM115 - closed below
            logs.append(log)
            engines.append(subprocess.Popen(
                [sys.executable, "-m", "rawe_cli", "consensus", "--redis-url", a.redis_url,
                 "--namespace", ns, *(["--shard", f"{k}/{n}"] if n else []), "--threshold",
                 "3", "--window", "120", "--no-dashboard", "--duration", str(a.timeout)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env))
        deadline = time.monotonic() + a.timeout
        for k in range(count):
            path = logdir / f"{ns}-{k}.log"
            while "listening:" not in path.read_text():
                if engines[k].poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"engine {k}/{n} did not start:\n{path.read_text()}")
                time.sleep(0.02)
        batches = proposals(a.proposals, keys, ns)
        cpu0 = [cpu_seconds(e.pid) for e in engines]
        rcpu0 = redis_cpu(r)
        t0 = time.perf_counter()
        streams = list(batches)
        pos = dict.fromkeys(streams, 0)
        while any(pos[s] < len(batches[s]) for s in streams):  # round-robin over the shards
            for s in streams:
                chunk = batches[s][pos[s]:pos[s] + 500]
                if chunk:
                    pipe = r.pipeline(transaction=False)
                    for f in chunk:
                        pipe.xadd(s, f, maxlen=STREAM_MAXLEN, approximate=True)
                    pipe.execute()
                    pos[s] += len(chunk)
        want = {s: len(b) for s, b in batches.items()}
        done: set[str] = set()
        while len(done) < len(want):
            for s in want:
                g = group(r, s)
                if s not in done and g and (g.get("entries-read") or 0) >= want[s] and \
                        g["pending"] == 0:
                    done.add(s)
            if time.monotonic() > deadline:
                raise SystemExit(f"not consumed in {a.timeout} s (N={n})")
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        cpu = [cpu_seconds(e.pid) - c for e, c in zip(engines, cpu0, strict=True)]
        rcpu = redis_cpu(r) - rcpu0
        shard_keys = keys.all_shards()
        per_shard = [len(batches.get(k.proposals, [])) for k in shard_keys]
        decided = sum(int(r.zcard(k.decision_index)) for k in shard_keys)
        assert decided == a.proposals // 3, (decided, a.proposals // 3)
        return {"shards": n, "rate": a.proposals / wall, "wall": wall,
                "cpu_us": [c / m * 1e6 for c, m in zip(cpu, per_shard, strict=True)],
                "redis_us": rcpu / a.proposals * 1e6, "per_shard": per_shard}
    finally:
        for e in engines:
            if e.poll() is None:
                e.send_signal(2)
        for e in engines:
            try:
                e.wait(15)
            except subprocess.TimeoutExpired:
                e.kill()
                e.wait(5)
        for log in logs:
            log.close()
        for pattern in (f"{{{ns}*", f"{ns}:*"):
            found = list(r.scan_iter(match=pattern, count=1000))
            if found:
                r.delete(*found)


def spread(xs: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default=os.environ.get("RAWE_REDIS_URL",
                                                          "redis://127.0.0.1:6379/0"))
    ap.add_argument("--proposals", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()
    a.proposals -= a.proposals % 3
    r = redis.Redis.from_url(a.redis_url, decode_responses=True)
    assert shard_of("x", 2) in (0, 1)
    print(f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"Redis {r.info('server')['redis_version']}; {a.proposals} proposals a run, "
          f"{a.repeat} runs per shard count")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (0, 1, 2):
            runs = [one_run(a, r, n, Path(tmp)) for _ in range(a.repeat)]
            per = [[run["cpu_us"][k] for run in runs] for k in range(max(n, 1))]
            label = f"{n} shard(s)" if n else "unsharded"
            print(f"{label}: {spread([x['rate'] for x in runs])} proposals/s aggregate; "
                  + "; ".join(f"{f'shard {k}/{n}' if n else 'engine'} CPU "
                              f"{spread(per[k], '{:.1f}')} us per "
                              f"proposal ({runs[0]['per_shard'][k]} proposals)"
                              for k in range(max(n, 1)))
                  + f"; Redis CPU {spread([x['redis_us'] for x in runs], '{:.1f}')} us per "
                  "proposal")
    r.close()


if __name__ == "__main__":
    main()
