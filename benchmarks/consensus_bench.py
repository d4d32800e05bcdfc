"""Throughput of the consensus core: proposals per second through ConsensusEngine.submit.

    python benchmarks/consensus_bench.py                  # full run (about a minute)
    python benchmarks/consensus_bench.py --quick          # a few seconds
    python benchmarks/consensus_bench.py --assets 10 10000 --proposals 100000 --repeats 3
    python benchmarks/consensus_bench.py --engine /tmp/old.py --no-seed   # another engine file

Workload: 50 agents of weight 1.0, threshold 3.0, window 10 s. Proposals arrive as a Poisson
stream at --rate per second of event time (default 2,000/s, so up to 20,000 votes can be
live in the window); each picks a random agent and asset and leans to the asset's own bias
(each asset has a long-probability drawn in 0.2..0.8). A proposal's timestamp is its
creation time, 0..50 ms before its arrival (`now`); an agent's own proposals keep their
order, different agents' proposals interleave. Proposals are generated before timing.

Ours: the whole stream, median of --repeats runs (each on a fresh engine).
Seed port (benchmarks/seed_consensus.py): warmed up untimed on the first --seed-warmup
proposals (the steady state of the window), then timed on the following proposals until
--seed-seconds or --seed-max proposals, median of --seed-repeats runs. Both engines must
reach the same decisions on the timed slice; the script checks that and fails otherwise.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.seed_consensus import SeedConsensus
from rawe_cli.core.consensus import DECIDED, SUPPRESSED, ConsensusEngine
from rawe_cli.models import Direction, Proposal

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Workload:
    assets: int
    agents: int
    stream: list[tuple[Proposal, float]]  # (proposal, arrival time = `now`)


def make_workload(assets: int, n: int, *, agents: int = 50, rate: float = 2000.0,
                  seed: int = 1) -> Workload:
    rng = random.Random(seed * 1_000_003 + assets)
    names = [f"agent-{i:02d}" for i in range(agents)]
    symbols = [f"S{i:05d}" for i in range(assets)]
    bias = [rng.uniform(0.2, 0.8) for _ in range(assets)]
    last_ts = dict.fromkeys(names, 0.0)
    stream: list[tuple[Proposal, float]] = []
    now = T0
    for i in range(n):
        now += rng.expovariate(rate)
        agent = names[rng.randrange(agents)]
        k = rng.randrange(assets)
        ts = max(now - rng.uniform(0.0, 0.05), last_ts[agent])  # per-agent order kept
        last_ts[agent] = ts
        stream.append((Proposal(
            id=f"p{i}", agent=agent, asset=symbols[k],
            direction=Direction.LONG if rng.random() < bias[k] else Direction.SHORT,
            size=rng.uniform(0.01, 0.1), expected_profit=rng.uniform(0.0, 0.05),
            risk_score=rng.random(), narrative_id=f"n{k % 97}", signal_type="narrative_leads",
            timestamp=ts, horizon=rng.uniform(60.0, 600.0), stop_loss=rng.uniform(0.01, 0.03),
            take_profit=rng.uniform(0.02, 0.06)), now))
    return Workload(assets, agents, stream)


ENGINE = ConsensusEngine


def load_engine(path: str) -> type[ConsensusEngine]:
    """Another consensus.py (e.g. an older commit's) with the same API, for before/after."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("alt_consensus", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"consensus_bench: error: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.ConsensusEngine


def _engine(w: Workload) -> ConsensusEngine:
    eng = ENGINE(threshold=3.0, window=10.0)
    for i in range(w.agents):
        eng.register(f"agent-{i:02d}", 1.0)
    return eng


def run_ours(w: Workload) -> tuple[float, int]:
    """Seconds for the whole stream on a fresh engine, and decisions made (incl. suppressed)."""
    eng = _engine(w)
    submit = eng.submit
    stream = w.stream
    gc.collect()
    gc.freeze()  # the pre-generated stream is the harness's, not the engine's garbage
    start = time.perf_counter()
    for p, now in stream:
        submit(p, now)
    elapsed = time.perf_counter() - start
    gc.unfreeze()
    stats = eng.stats
    return elapsed, stats[DECIDED] + stats[SUPPRESSED]


def decisions_by_index(w: Workload) -> dict[int, tuple[str, Direction, tuple[str, ...]]]:
    """Untimed: each decision of ours, keyed by the index of the proposal that triggered it."""
    eng = _engine(w)
    out = {}
    for i, (p, now) in enumerate(w.stream):
        _, d = eng.submit(p, now)
        if d is not None:
            out[i] = (d.asset, d.direction, tuple(sorted(d.proposal_ids)))
    return out


def run_seed(w: Workload, warmup: int, seconds: float, cap: int
             ) -> tuple[float, int, int, list[tuple[str, Direction, tuple[str, ...]]], int]:
    """Seconds, proposals timed, decisions in the timed slice, those decisions, held size."""
    seed = SeedConsensus({f"agent-{i:02d}": 1.0 for i in range(w.agents)},
                         threshold=3.0, window=10.0)
    for p, now in w.stream[:warmup]:
        seed.warm(p, now)
    held = seed.held_count
    before = len(seed.decisions)
    submit = seed.submit
    stream = w.stream
    end = min(len(stream), warmup + cap)
    clock = time.perf_counter
    gc.collect()
    gc.freeze()
    start = clock()
    deadline = start + seconds
    i = warmup
    while i < end:
        p, now = stream[i]
        submit(p, now)
        i += 1
        if (i & 15) == 0 and clock() > deadline:
            break
    elapsed = clock() - start
    gc.unfreeze()
    timed = i - warmup
    return elapsed, timed, len(seed.decisions) - before, seed.decisions[before:], held


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, nargs="+", default=[10, 1_000, 10_000])
    ap.add_argument("--proposals", type=int, default=300_000, help="per asset count (ours)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rate", type=float, default=2000.0, help="proposals per event second")
    ap.add_argument("--seed-warmup", type=int, default=30_000)
    ap.add_argument("--seed-seconds", type=float, default=3.0)
    ap.add_argument("--seed-max", type=int, default=200_000)
    ap.add_argument("--seed-repeats", type=int, default=3)
    ap.add_argument("--no-seed", action="store_true", help="skip the seed port")
    ap.add_argument("--engine", metavar="PATH",
                    help="time another consensus.py instead (e.g. `git show "
                         "9dd913d:rawe_cli/core/consensus.py > /tmp/old.py`)")
    ap.add_argument("--quick", action="store_true",
                    help="60,000 proposals, 3 repeats, seed port 1 s x 1")
    args = ap.parse_args(argv)
    global ENGINE
    if args.engine:
        ENGINE = load_engine(args.engine)
    if args.quick:
        args.proposals, args.repeats = 60_000, 3
        args.seed_seconds, args.seed_repeats = 1.0, 1
    if args.proposals <= args.seed_warmup and not args.no_seed:
        args.seed_warmup = args.proposals // 2

    if args.engine:
        print(f"engine: {args.engine}")
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} cores; 50 agents, threshold 3.0, window 10 s, "
          f"{args.rate:g} proposals per event second")
    # Our engine first, for every size, then the seed port, so that the port's temporary
    # objects are never on the heap under our measurement.
    rows = []
    for n_assets in args.assets:
        w = make_workload(n_assets, args.proposals, rate=args.rate)
        runs = [run_ours(w) for _ in range(args.repeats)]
        ours_rate = statistics.median(len(w.stream) / r[0] for r in runs)
        rows.append([n_assets, len(w.stream), ours_rate, runs[0][1], None, ""])
        print(f"  {n_assets:>6} assets: ours {ours_rate:>10,.0f}/s", flush=True)
        del w, runs
    if not args.no_seed:
        for row in rows:
            n_assets = row[0]
            w = make_workload(n_assets, args.proposals, rate=args.rate)  # same seed: same
            by_index = decisions_by_index(w)
            srates = []
            for _ in range(args.seed_repeats):
                secs, timed, _, sdec, held = run_seed(
                    w, args.seed_warmup, args.seed_seconds, args.seed_max)
                srates.append(timed / secs)
                # the seed port must reach exactly our decisions on the timed slice
                lo, hi = args.seed_warmup, args.seed_warmup + timed
                mine = [d for i, d in by_index.items() if lo <= i < hi]
                if sorted(sdec) != sorted(mine):
                    print(f"MISMATCH at {n_assets} assets: seed port {len(sdec)} decisions, "
                          f"ours {len(mine)}", file=sys.stderr)
                    return 2
            row[4] = statistics.median(srates)
            row[5] = f"{timed} timed, {held} held"
            print(f"  {n_assets:>6} assets: seed port {row[4]:>9,.0f}/s ({row[5]})",
                  flush=True)
            del w

    print()
    print(f"{'assets':>7} {'proposals':>10} {'ours /s':>11} {'decisions':>10} "
          f"{'seed port /s':>13} {'ours/seed':>10}")
    for n_assets, n, ours_rate, decided, seed_rate, _ in rows:
        seed_s = f"{seed_rate:>13,.0f}" if seed_rate else f"{'-':>13}"
        ratio = f"{ours_rate / seed_rate:>9,.0f}x" if seed_rate else f"{'-':>10}"
        print(f"{n_assets:>7} {n:>10,} {ours_rate:>11,.0f} {decided:>10,} {seed_s} {ratio}")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\nours at {last[0]:,} assets vs {first[0]:,}: "
              f"{first[2] / last[2]:.2f}x slower (target <= 1.5x); "
              f"slowest {min(r[2] for r in rows):,.0f}/s (target >= 300,000/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
