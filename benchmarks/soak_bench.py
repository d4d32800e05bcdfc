"""Soak: `rawe consensus` for minutes at a steady load; is memory flat, is the ledger bounded?

    python benchmarks/soak_bench.py [--minutes 10] [--rate 300] [--retention 60s]
                                    [--sample-every 10] [--json soak.json]
    git archive 790380c | tar -x -C /tmp/old     # the engine before issue 9, for comparison
    python benchmarks/soak_bench.py --root /tmp/old --legacy --minutes 5

Starts its own redis-server on a free loopback port (AOF on, in a temporary directory; the
shared Redis is never touched), registers 30 agents, and runs one `rawe consensus` process
(paper broker, scheme majority, threshold 3, window 10 s, `ledger_retention` --retention,
the archive in the temporary directory) while this process publishes, every 100 ms:

* a bar for each of 100 symbols once a second (prices: positions open and close);
* agreeing triples (three agents, one direction, on a priced symbol): a decision each,
  opening, reversing or suppressed; proposals carry a 20 s horizon, so positions close;
* single votes on ever new asset names that never reach the threshold (books that must be
  freed when the votes expire), a third of the rate.

Both streams are capped at 50,000 entries by the publisher (XADD MAXLEN ~), so Redis'
memory levels off once they are full (the market stream, at 100 bars/s, after 8 minutes).
`--root DIR` runs the engine from another checkout; `--legacy` leaves out the settings an
engine from before issue 9 does not know (retention, archive).

Every --sample-every seconds it records the engine's RSS (/proc/PID/status VmRSS), Redis'
used_memory, the ledger in Redis (HLEN of the decisions hash, SCARD of the open set), the
seen-id table, the archive's lines and the decisions so far, and prints a row. At the end: the
RSS and ledger at the first sample after warm-up (2 minutes, or a fifth of the run) and at
the end, and the slope of RSS over the rest of the run (least squares, kB per minute).
Everything is bounded: the run by --minutes, each wait by a deadline.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from rawe_cli.bus import codec
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.durations import parse_duration
from rawe_cli.models import Bar, Direction, Proposal

ROOT = Path(__file__).resolve().parent.parent
NS = "soak"
AGENTS = [f"soak-a{i:02d}" for i in range(30)]
SYMBOLS = [f"S{i:03d}" for i in range(100)]
STREAM_CAP = 50_000  # XADD MAXLEN ~ of the proposal and market streams (the engine caps at 500k)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"soak: {what} not in {timeout:g} s")


def proposal(agent: str, asset: str, direction: Direction, now: float) -> dict[str, str]:
    p = Proposal(f"k-{uuid.uuid4().hex[:16]}", agent, asset, direction, 0.01, 0.0, 0.5,
                 "", "manual", now, 1.0, 20.0, 0.5, 0.5)
    return codec.encode_proposal(p)


def slope_kb_per_min(points: list[tuple[float, int]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 60.0 * sum((t - mx) * (v - my) for t, v in points) / var if var else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=300.0, help="proposals per second")
    ap.add_argument("--retention", default="60s", help="the engine's ledger_retention")
    ap.add_argument("--sample-every", type=float, default=10.0)
    ap.add_argument("--json", type=Path, default=None, help="write the samples here")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--root", type=Path, default=ROOT, help="run the engine from this tree")
    ap.add_argument("--legacy", action="store_true",
                    help="an engine without ledger_retention and archive settings")
    args = ap.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("soak: needs redis-server on PATH")
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="rawe-soak-"))
    port = free_port()
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port",
                    str(port), "--save", "", "--appendonly", "yes", "--dir", str(tmp),
                    "--logfile", str(tmp / "redis.log")], check=True)
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url, decode_responses=True)
    wait_for(lambda: _pings(r), 15, "redis-server")
    for name in AGENTS:
        r.hset(f"{NS}:agents", name, json.dumps(AgentRecord(name, "soak").to_dict()))
    archive = tmp / "archive.jsonl"
    settings = tmp / "settings.yaml"
    retention = "" if args.legacy else (f"ledger_retention: {args.retention}\n"
                                         f"archive: {archive}\n")
    settings.write_text(
        f"namespace: {NS}\nscheme: majority\nthreshold: 3\nwindow: 10s\n{retention}"
        "max_open_positions: 60\nmax_position_fraction: 0.01\nmax_gross_exposure: 5\n")
    log = open(tmp / "consensus.log", "w")  # noqa: SIM115 - closed at the end
    engine = subprocess.Popen([sys.executable, "-m", "rawe_cli", "consensus", "--no-dashboard",
                               "-c", str(settings), "--redis-url", url], stdout=log,
                              stderr=subprocess.STDOUT, cwd=args.root)
    wait_for(lambda: "active:" in (tmp / "consensus.log").read_text(), 30, "the engine")
    print(f"soak: redis on port {port}, engine pid {engine.pid}, {args.rate:g} proposals/s, "
          f"{args.minutes:g} min, retention {args.retention}, files in {tmp}")
    header = (f"{'min':>5} {'rss MiB':>8} {'redis MiB':>9} {'ledger':>7} {'open':>5} "
              f"{'seen':>6} {'archived':>9} {'decided':>8} {'published':>10}")
    print(header)
    samples: list[dict[str, Any]] = []
    start = time.monotonic()
    end = start + args.minutes * 60
    next_sample = start
    next_bar = start
    published = 0
    new_asset = 0
    prices = {s: 100.0 for s in SYMBOLS}
    tick = 0.1
    try:
        while time.monotonic() < end:
            t = time.monotonic()
            now = time.time()
            pipe = r.pipeline(transaction=False)
            if t >= next_bar:
                next_bar += 1.0
                for s in SYMBOLS:
                    prices[s] *= 1 + rng.gauss(0, 0.002)
                    p = prices[s]
                    pipe.xadd(f"{NS}:market", codec.encode_market(Bar(now, s, p, p, p, p, 1.0)),
                              maxlen=STREAM_CAP, approximate=True)
            n = int(args.rate * tick)
            triples, singles = divmod(2 * n // 3, 3)[0], n // 3
            for _ in range(triples):
                asset = rng.choice(SYMBOLS)
                direction = rng.choice((Direction.LONG, Direction.SHORT))
                for agent in rng.sample(AGENTS, 3):
                    pipe.xadd(f"{NS}:proposals", proposal(agent, asset, direction, now),
                              maxlen=STREAM_CAP, approximate=True)
                published += 3
            for _ in range(singles):
                new_asset += 1
                pipe.xadd(f"{NS}:proposals",
                          proposal(rng.choice(AGENTS), f"N{new_asset}", Direction.LONG, now),
                          maxlen=STREAM_CAP, approximate=True)
                published += 1
            pipe.execute()
            if t >= next_sample:
                next_sample += args.sample_every
                row = sample(r, engine.pid, archive, t - start, published)
                samples.append(row)
                print(f"{row['minute']:5.1f} {row['rss_kb'] / 1024:8.1f} "
                      f"{row['redis_bytes'] / 2 ** 20:9.1f} {row['ledger']:7,} {row['open']:5,}"
                      f" {row['seen']:6,} {row['archived']:9,} {row['decided']:8,} "
                      f"{row['published']:10,}", flush=True)
            if engine.poll() is not None:
                raise SystemExit(f"soak: the engine exited ({engine.returncode}); see {tmp}")
            time.sleep(max(0.0, tick - (time.monotonic() - t)))
    finally:
        engine.terminate()
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
        log.close()
        r.shutdown(nosave=True)
    report(samples, args)
    if args.json is not None:
        args.json.write_text(json.dumps(samples, indent=1))


def _pings(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.ConnectionError:
        return False


def sample(r: redis.Redis, pid: int, archive: Path, elapsed: float, published: int
           ) -> dict[str, Any]:
    try:
        with open(archive, "rb") as fh:
            archived = sum(1 for _ in fh)
    except FileNotFoundError:
        archived = 0
    ledger = r.hlen(f"{NS}:decisions")
    return {
        "minute": elapsed / 60, "rss_kb": rss_kb(pid),
        "redis_bytes": int(r.info("memory")["used_memory"]),
        "ledger": ledger, "open": max(0, r.scard(f"{NS}:decisions:open") - 1),  # - sentinel
        "seen": r.hlen(f"{NS}:seen"), "archived": archived,
        "decided": ledger + archived, "published": published,
    }


def report(samples: list[dict[str, Any]], args: argparse.Namespace) -> None:
    if len(samples) < 3:
        print("soak: too short to say anything")
        return
    warm = min(2.0, args.minutes / 5)
    rest = [s for s in samples if s["minute"] >= warm] or samples[-2:]
    first, last = rest[0], samples[-1]
    slope = slope_kb_per_min([(s["minute"] * 60, s["rss_kb"]) for s in rest])
    minutes = last["minute"] - first["minute"]
    print(f"\nafter warm-up ({first['minute']:.1f} min) -> end ({last['minute']:.1f} min):")
    print(f"  engine RSS     {first['rss_kb'] / 1024:.1f} -> {last['rss_kb'] / 1024:.1f} MiB, "
          f"slope {slope:+.0f} kB/min (max {max(s['rss_kb'] for s in rest) / 1024:.1f} MiB)")
    print(f"  Redis memory   {first['redis_bytes'] / 2 ** 20:.1f} -> "
          f"{last['redis_bytes'] / 2 ** 20:.1f} MiB")
    print(f"  ledger (Redis) {first['ledger']:,} -> {last['ledger']:,} decisions "
          f"(max {max(s['ledger'] for s in rest):,}); seen ids max "
          f"{max(s['seen'] for s in rest):,}")
    print(f"  decided        {last['decided'] - first['decided']:,} decisions in {minutes:.1f} "
          f"min ({(last['decided'] - first['decided']) / max(minutes * 60, 1):.1f}/s); "
          f"archived {last['archived']:,} in all")
    retention = parse_duration(args.retention, allow_bars=False).value
    print(f"  retention {retention:g} s; published {last['published']:,} proposals")


if __name__ == "__main__":
    main()
