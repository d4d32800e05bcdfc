"""End to end through a real Redis: publisher processes -> stream -> `rawe consensus`.

    python benchmarks/e2e_bench.py [--redis-url redis://127.0.0.1:6379/0] [--quick]
                                   [--proposals 60000] [--publishers 2] [--batch 200]
                                   [--rate 1000] [--latency-seconds 5] [--repeat 3]
                                   [--live-votes 60000] [--profile engine.prof]

Four measurements, each in its own fresh key namespace (`e2e-<random>-...`, deleted at the
end; nothing else in the Redis is touched):

1. **Limit**: the same publisher processes (the project's codec, redis-py pipelined XADD in
   batches, exactly as below) against one bare consumer process that loops XREADGROUP (COUNT
   2000, like the engine) -> touch the fields -> XACK. Nothing else.
2. **Throughput**: the same publishers against a real `rawe consensus` subprocess (paper
   broker, threshold 3, window 30 s). Agents are registered in the agents hash first. Each
   publisher owns its agents (groups of 3) and its assets, and publishes each group's three
   agreeing proposals one after the other, so every third proposal completes a quorum and
   the engine decides (no bars are published, so a decision is recorded as skipped "no price
   for the asset yet": consensus, ledger and persistence run, the broker does not).
   Both runs are timed the same way: from releasing the publishers until the consumer group
   has read every entry and its pending list is empty (XINFO GROUPS, polled every 2 ms; the
   engine acks a vote only after the decision that consumed it has been saved). Decisions
   are counted from the ledger (the decision index) and must equal proposals / 3.
3. **Latency**: on the same engine, the publishers pace themselves to `--rate` proposals/s
   in total for `--latency-seconds`; latency = the ledger entry's timestamp (the engine's
   `now` when it decided; the wall clock, since no bars are published) minus the timestamp
   of the newest proposal among the decision's votes (the one that completed the quorum,
   stamped with time.time() by the publisher right before its XADD). Same machine, same
   clock.

4. **Memory**: a fresh engine takes `--live-votes` proposals, each on an asset of its own,
   so every one stays a live vote (in its book, in the seen ids, pending on the stream);
   the engine's RSS (/proc/<pid>/status) before and after, divided by the votes.

CPU per proposal is reported for each process separately, over the throughput window:
the publishers (`os.times` in each), the consumer (`/proc/<pid>/stat`), Redis (`INFO cpu`).

Throughput runs are repeated `--repeat` times (fresh namespace and engine each time); the
table shows the median and the range. Everything is bounded: proposals by count, every wait
by a deadline; the engine runs with --duration.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from rawe_cli.bus import codec
from rawe_cli.bus.keys import CONSENSUS_GROUP, Keys
from rawe_cli.bus.streams import STREAM_MAXLEN
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.models import Direction, Proposal

ROOT = Path(__file__).resolve().parent.parent
GROUP_SIZE = 3  # agents agreeing per decision (threshold 3, weight 1 each)
READ_COUNT = 2000  # the engine's XREADGROUP COUNT (ConsensusService's poll_ahead)


# -- publishers --------------------------------------------------------------------------------


def agent_names(pub: int, agents: int) -> list[str]:
    return [f"bench-p{pub}-a{i:03d}" for i in range(agents)]


def make_proposals(pub: int, start: int, n: int, agents: int, assets: int, tag: str,
                   now: float) -> list[dict[str, str]]:
    """Proposals start..start+n-1 of publisher `pub`: triple k = agents of group k % groups
    on asset k % assets, all long; stamped `now`. With assets=0, every proposal on an asset
    of its own: a vote that stays live (no quorum)."""
    groups = agents // GROUP_SIZE
    out = []
    for i in range(start, start + n):
        k, j = divmod(i, GROUP_SIZE)
        g = k % groups
        asset = f"{tag}{pub}-{k % assets:04d}" if assets else f"{tag}{pub}-{i:06d}"
        p = Proposal(
            id=f"{tag}-p{pub}-{i}", agent=f"bench-p{pub}-a{g * GROUP_SIZE + j:03d}",
            asset=asset, direction=Direction.LONG, size=0.05,
            expected_profit=0.01, risk_score=0.5, narrative_id="bench", signal_type="manual",
            timestamp=now,
        )
        out.append(codec.encode_proposal(p))
    return out


def publisher(url: str, stream: str, pub: int, total: int, batch: int, agents: int,
              assets: int, tag: str, rate: float | None, go: Any, out: Any) -> None:
    """Publish `total` proposals in pipelined batches of `batch` XADDs (as Bus.add_many does);
    paced to `rate` per second when given."""
    r = redis.Redis.from_url(url, decode_responses=True)
    r.ping()
    go.wait()
    t0 = time.time()
    c0 = sum(os.times()[:2])
    sent = 0
    while sent < total:
        if rate is not None:
            due = min(total, int((time.time() - t0) * rate) + 1)
            if due <= sent:
                time.sleep(0.0005)
                continue
            n = min(batch, due - sent)
        else:
            n = min(batch, total - sent)
        fields = make_proposals(pub, sent, n, agents, assets, tag, time.time())
        pipe = r.pipeline(transaction=False)
        for f in fields:
            pipe.xadd(stream, f, maxlen=STREAM_MAXLEN, approximate=True)
        pipe.execute()
        sent += n
    out.put((pub, sent, t0, time.time(), sum(os.times()[:2]) - c0))
    r.close()


def start_publishers(url: str, stream: str, n_pub: int, per_pub: int, batch: int,
                     agents: int, assets: int, tag: str, rate: float | None
                     ) -> tuple[list[Any], Any, Any]:
    """Publisher processes, connected and waiting for `go.set()`."""
    ctx = mp.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=publisher, args=(url, stream, i, per_pub, batch, agents, assets,
                                                 tag, rate, go, out), daemon=True)
             for i in range(n_pub)]
    for p in procs:
        p.start()
    time.sleep(0.3)  # let them connect
    return procs, out, go


def join_publishers(procs: list[Any], out: Any, deadline: float) -> list[tuple]:
    results = []
    for _ in procs:
        results.append(out.get(timeout=max(0.1, deadline - time.monotonic())))
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    return results


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# -- consumers ---------------------------------------------------------------------------------


def bare_consumer(url: str, stream: str, stop: Any) -> None:
    """The physical limit's consumer: XREADGROUP -> touch the fields -> XACK, nothing else."""
    r = redis.Redis.from_url(url, decode_responses=True)
    with contextlib.suppress(redis.ResponseError):
        r.xgroup_create(stream, CONSENSUS_GROUP, id="0", mkstream=True)
    seen = 0
    while not stop.is_set():
        reply = r.xreadgroup(CONSENSUS_GROUP, "bare", {stream: ">"}, count=READ_COUNT,
                             block=100)
        if not reply:
            continue
        entries = reply[0][1]
        ids = []
        for eid, fields in entries:
            seen += len(fields["data"])
            ids.append(eid)
        r.xack(stream, CONSENSUS_GROUP, *ids)
    r.close()


def group_info(r: redis.Redis, stream: str) -> dict[str, Any] | None:
    try:
        groups = r.xinfo_groups(stream)
    except redis.ResponseError:
        return None
    for g in groups:
        if g["name"] == CONSENSUS_GROUP:
            return g
    return None


def wait_consumed(r: redis.Redis, stream: str, total: int, deadline: float,
                  pending: int = 0) -> float:
    """perf_counter time when the group has read `total` entries and `pending` are pending."""
    while time.monotonic() < deadline:
        g = group_info(r, stream)
        if g is not None and (g.get("entries-read") or 0) >= total and g["pending"] == pending:
            return time.perf_counter()
        time.sleep(0.002)
    g = group_info(r, stream)
    raise SystemExit(f"timed out waiting for the consumer: {g}")


def delete_namespace(r: redis.Redis, ns: str) -> int:
    n = 0
    for key in r.scan_iter(match=f"{ns}:*", count=1000):
        n += r.delete(key)
    return n


# -- the runs ----------------------------------------------------------------------------------


@dataclass
class Run:
    rate: float  # proposals per second, first publish -> all consumed
    cpu: dict[str, float]  # CPU microseconds per proposal: publishers, consumer, redis


def limit_run(a: argparse.Namespace, r: redis.Redis, ns: str) -> Run:
    keys = Keys(ns)
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    cons = ctx.Process(target=bare_consumer, args=(a.redis_url, keys.proposals, stop),
                       daemon=True)
    cons.start()
    deadline = time.monotonic() + a.timeout
    while group_info(r, keys.proposals) is None:
        if time.monotonic() > deadline:
            raise SystemExit("bare consumer did not start")
        time.sleep(0.01)
    assert cons.pid is not None
    run = measure(a, r, keys.proposals, cons.pid, deadline)
    stop.set()
    cons.join(5)
    return run


def measure(a: argparse.Namespace, r: redis.Redis, stream: str, consumer_pid: int,
            deadline: float) -> Run:
    """Release the publishers; wait until the group has consumed everything."""
    per_pub = a.proposals // a.publishers
    total = per_pub * a.publishers
    procs, out, go = start_publishers(a.redis_url, stream, a.publishers, per_pub, a.batch,
                                      a.agents, a.assets, "T", None)
    c0, r0 = cpu_seconds(consumer_pid), redis_cpu(r)
    t0 = time.perf_counter()
    go.set()
    t1 = wait_consumed(r, stream, total, deadline)
    c1, r1 = cpu_seconds(consumer_pid), redis_cpu(r)
    pubs = join_publishers(procs, out, deadline)
    per = 1e6 / total
    return Run(total / (t1 - t0), {"publishers": sum(x[4] for x in pubs) * per,
                                   "consumer": (c1 - c0) * per, "redis": (r1 - r0) * per})


class Engine:
    """A `rawe consensus` subprocess on namespace `ns`."""

    def __init__(self, a: argparse.Namespace, ns: str, log: Path) -> None:
        self.log = log
        self.fh = open(log, "w")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable]
        if a.py_spy:
            cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "1000", "-f",
                   "raw", "-o", a.py_spy, "--", sys.executable]
        elif a.profile:
            cmd += ["-m", "cProfile", "-o", a.profile]
        cmd += ["-m", "rawe_cli", "consensus", "--redis-url", a.redis_url, "--namespace", ns,
                "--threshold", "3", "--window", "30", "--no-dashboard",
                "--duration", str(a.timeout)]
        env = {**os.environ}
        env.pop("RAWE_BUS_SECRET", None)
        self.p = subprocess.Popen(cmd, stdout=self.fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                  env=env)

    def wait_ready(self, r: redis.Redis, stream: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            if group_info(r, stream) is not None:
                return
            if self.p.poll() is not None:
                raise SystemExit(f"rawe consensus exited:\n{self.log.read_text()}")
            time.sleep(0.02)
        raise SystemExit(f"rawe consensus not ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(2)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.fh.close()


def register(r: redis.Redis, keys: Keys, a: argparse.Namespace) -> None:
    pipe = r.pipeline(transaction=False)
    for pub in range(a.publishers):
        for name in agent_names(pub, a.agents):
            pipe.hsetnx(keys.agents, name, json.dumps(AgentRecord(name, "bench").to_dict()))
    pipe.execute()


def ledger(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    return [json.loads(v) for v in r.hvals(keys.decisions)]


def engine_run(a: argparse.Namespace, r: redis.Redis, ns: str, latency: bool
               ) -> tuple[Run, int, list[float]]:
    keys = Keys(ns)
    register(r, keys, a)
    deadline = time.monotonic() + a.timeout
    eng = Engine(a, ns, Path(a.log_dir) / f"{ns}.log")
    try:
        eng.wait_ready(r, keys.proposals, deadline)
        time.sleep(0.3)  # its loop is running
        run = measure(a, r, keys.proposals, eng.p.pid, deadline)
        total = a.proposals // a.publishers * a.publishers
        decisions = r.zcard(keys.decision_index)
        lat: list[float] = []
        if latency:
            lat = latency_run(a, r, keys, total, deadline)
    finally:
        eng.stop()
    if decisions != total // GROUP_SIZE:
        raise SystemExit(f"expected {total // GROUP_SIZE} decisions, the ledger has "
                         f"{decisions}; engine log: {eng.log}")
    return run, decisions, lat


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_run(a: argparse.Namespace, r: redis.Redis, ns: str) -> tuple[float, int]:
    """Bytes of engine RSS per live vote: `--live-votes` proposals, each on an asset of its
    own (no quorum: every one stays a live vote, pending on the stream, in its book, in the
    seen ids), RSS before and after. Returns (bytes per vote, votes)."""
    keys = Keys(ns)
    register(r, keys, a)
    deadline = time.monotonic() + a.timeout
    eng = Engine(a, ns, Path(a.log_dir) / f"{ns}.log")
    try:
        eng.wait_ready(r, keys.proposals, deadline)
        time.sleep(1.0)  # its loop is running, its first chores done
        before = rss_bytes(eng.p.pid)
        per_pub = a.live_votes // a.publishers
        procs, out, go = start_publishers(a.redis_url, keys.proposals, a.publishers, per_pub,
                                          a.batch, a.agents, 0, "M", None)
        go.set()
        join_publishers(procs, out, deadline)
        total = per_pub * a.publishers
        wait_consumed(r, keys.proposals, total, deadline, pending=total)
        time.sleep(1.0)  # a round of chores (sweep, expire) with the votes still live
        after = rss_bytes(eng.p.pid)
    finally:
        eng.stop()
    return (after - before) / total, total


def latency_run(a: argparse.Namespace, r: redis.Redis, keys: Keys, already: int,
                deadline: float) -> list[float]:
    """Paced publishing; latency of each decision made from these proposals."""
    per_pub = int(a.rate * a.latency_seconds) // a.publishers
    per_pub -= per_pub % GROUP_SIZE
    rate = a.rate / a.publishers
    procs, out, go = start_publishers(a.redis_url, keys.proposals, a.publishers, per_pub,
                                      a.batch, a.agents, a.assets, "L", rate)
    go.set()
    join_publishers(procs, out, deadline)
    wait_consumed(r, keys.proposals, already + per_pub * a.publishers, deadline)
    stamps: dict[str, float] = {}
    for _eid, fields in r.xrange(keys.proposals):
        d = json.loads(fields["data"])
        if d["id"].startswith("L-"):
            stamps[d["id"]] = d["timestamp"]
    lat = []
    for e in ledger(r, keys):
        if e["asset"].startswith("L"):
            completed = max(stamps[pid] for pid in e["proposal_ids"])
            lat.append(e["timestamp"] - completed)
    expected = per_pub * a.publishers // GROUP_SIZE
    if len(lat) != expected:
        raise SystemExit(f"latency run: expected {expected} decisions, got {len(lat)}")
    return lat


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs)) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-url", default=os.environ.get("RAWE_REDIS_URL",
                                                          "redis://127.0.0.1:6379/0"))
    ap.add_argument("--proposals", type=int, default=None,
                    help="proposals per throughput run (all publishers together)")
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=200, help="XADDs per pipeline")
    ap.add_argument("--agents", type=int, default=30, help="agents per publisher")
    ap.add_argument("--assets", type=int, default=250, help="assets per publisher")
    ap.add_argument("--rate", type=float, default=1000.0, help="paced rate, proposals/s")
    ap.add_argument("--latency-seconds", type=float, default=None)
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=40.0, help="bound of each run, s")
    ap.add_argument("--quick", action="store_true",
                    help="defaults of 20,000 proposals, 1 repeat, 3 s of latency (instead of "
                         "60,000, 3, 5 s)")
    ap.add_argument("--profile", default="", help="cProfile the engine into this file")
    ap.add_argument("--py-spy", default="", help="sample the engine with py-spy (raw format)")
    ap.add_argument("--live-votes", type=int, default=None,
                    help="live votes of the memory run (default 60,000; --quick 20,000)")
    ap.add_argument("--log-dir", default="/tmp")
    a = ap.parse_args()
    for name, full, quick in (("proposals", 60_000, 20_000), ("repeat", 3, 1),
                              ("latency_seconds", 5.0, 3.0),
                              ("live_votes", 60_000, 20_000)):
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    a.agents -= a.agents % GROUP_SIZE
    if a.agents < GROUP_SIZE or a.publishers < 1 or a.proposals < GROUP_SIZE * a.publishers:
        raise SystemExit("need at least 3 agents per publisher and 3 proposals per publisher")
    a.proposals -= a.proposals % (GROUP_SIZE * a.publishers)

    r = redis.Redis.from_url(a.redis_url, decode_responses=True)
    r.ping()
    base = f"e2e-{uuid.uuid4().hex[:8]}"
    namespaces: list[str] = []
    limits: list[Run] = []
    ours: list[Run] = []
    lat: list[float] = []
    decisions = 0
    started = time.monotonic()
    try:
        for i in range(a.repeat):
            ns = f"{base}-limit{i}"
            namespaces.append(ns)
            limits.append(limit_run(a, r, ns))
            ns = f"{base}-engine{i}"
            namespaces.append(ns)
            run, decisions, got = engine_run(a, r, ns, latency=(i == a.repeat - 1))
            ours.append(run)
            lat = got or lat
            print(f"run {i + 1}: limit {limits[-1].rate:,.0f}/s, "
                  f"rawe consensus {ours[-1].rate:,.0f}/s", file=sys.stderr)
        ns = f"{base}-memory"
        namespaces.append(ns)
        memory = memory_run(a, r, ns)
        version = r.info("server")["redis_version"]
    finally:
        for ns in namespaces:
            delete_namespace(r, ns)
        r.close()
    report(a, limits, ours, decisions, lat, memory, version, time.monotonic() - started)


def report(a: argparse.Namespace, limits: list[Run], ours: list[Run], decisions: int,
           lat: list[float], memory: tuple[float, int], version: str, elapsed: float) -> None:
    def med(runs: list[Run], key: str) -> float:
        return statistics.median(x.cpu[key] for x in runs)

    lim = statistics.median(x.rate for x in limits)
    our = statistics.median(x.rate for x in ours)
    ms = [x * 1000 for x in lat]
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"redis {version}; {a.publishers} publisher processes, pipelines of {a.batch} "
          f"XADDs, {a.agents * a.publishers} agents, {a.assets * a.publishers} assets; "
          f"{a.proposals:,} proposals per run; total {elapsed:.1f} s")
    print()
    print(f"| consumer (median of {a.repeat}) | proposals/s | range | of limit | CPU us per "
          "proposal: publishers / consumer / redis |")
    print("|---|---:|---:|---:|---:|")
    for name, runs, rate in (("limit: bare XREADGROUP -> XACK", limits, lim),
                             (f"rawe consensus ({decisions:,} decisions)", ours, our)):
        rates = [x.rate for x in runs]
        print(f"| {name} | {rate:,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | "
              f"{100 * rate / lim:.0f}% | {med(runs, 'publishers'):.1f} / "
              f"{med(runs, 'consumer'):.1f} / {med(runs, 'redis'):.1f} |")
    print()
    print(f"| latency at {a.rate:,.0f} proposals/s ({len(ms):,} decisions) | min | p50 | p90 | "
          "p99 | max |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| proposal completing the quorum -> decision | {min(ms):.2f} ms | "
          f"{pct(ms, 50):.2f} ms | {pct(ms, 90):.2f} ms | {pct(ms, 99):.2f} ms | "
          f"{max(ms):.2f} ms |")
    print()
    print(f"memory: {memory[0]:,.0f} bytes of engine RSS per live vote ({memory[1]:,} live "
          f"votes, each on an asset of its own)")
    print()
    shares = ", ".join(f"{100 * o.rate / x.rate:.0f}%" for x, o in zip(limits, ours,
                                                                         strict=True))
    print(f"share of the limit run by run (each engine run against the limit run just "
          f"before it): {shares}")
    print()
    print(f"targets: throughput >= 60% of the limit: {'met' if our >= 0.6 * lim else 'MISSED'}"
          f" ({100 * our / lim:.0f}%); p99 < 5 ms at {a.rate:,.0f}/s: "
          f"{'met' if pct(ms, 99) < 5 else 'MISSED'} ({pct(ms, 99):.2f} ms)")


if __name__ == "__main__":
    main()
