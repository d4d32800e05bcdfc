"""Backtest throughput: bars per second through the whole core, and peak memory.

    python benchmarks/backtest_bench.py [--ticks 2000] [--symbols 50] [--agents 5]
                                        [--scheme hedge] [--tracemalloc]

The synthetic world (regime-switching, seed 7) is generated first and held in memory, like
loaded replay data; then the harness (rawe_cli.app.backtest.run_backtest: narrative engine,
agents, consensus, paper broker, portfolio, counterfactual scorer, regime classifier) runs
over it. Throughput = bars / wall seconds of the harness alone; the world's generation time
is reported apart. Peak memory is the process's peak resident set size (ru_maxrss), which
includes the interpreter and the ticks held in memory; --tracemalloc adds the peak of
Python allocations during the run itself (slower: tracing costs time, so that pass does not
count for throughput).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import resource
import sys
import time
import tracemalloc

from rawe_cli.app.backtest import run_backtest
from rawe_cli.app.runtime import world_params
from rawe_cli.config import Settings, load_personalities, pick_agents
from rawe_cli.feeds.scenarios import scenario_ticks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=2000)
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--scheme", default="hedge")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tracemalloc", action="store_true")
    a = ap.parse_args()

    symbols = tuple(f"S{i:03d}" for i in range(a.symbols))
    s = Settings(symbols=symbols, seed=7, scheme=a.scheme)
    agents = pick_agents(load_personalities(None), a.agents, s.seed)
    t0 = time.perf_counter()
    ticks = list(scenario_ticks("regime-switching", world_params(s), a.ticks))
    gen = time.perf_counter() - t0
    bars = sum(len(t.bars) for t in ticks)
    events = sum(len(t.events) for t in ticks)

    best = None
    result = None
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        result = run_backtest(ticks, s, agents)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    assert result is not None and best is not None
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"world: {a.symbols} symbols x {a.ticks} ticks = {bars:,} bars, {events:,} "
          f"narrative events, generated in {gen:.2f} s")
    print(f"run: {a.agents} agents, scheme {a.scheme}: {result.stats['signals']:,} signals, "
          f"{result.stats['proposals']:,} proposals, {result.stats['decisions']:,} decisions, "
          f"{result.metrics['trades']:,} closed trades")
    print(f"throughput: {bars / best:,.0f} bars/s (best of {a.repeat}: {best:.2f} s)")
    print(f"peak RSS: {rss_mb:.0f} MiB")
    if a.tracemalloc:
        tracemalloc.start()
        run_backtest(ticks, dataclasses.replace(s), agents)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak traced Python allocations during one run: {peak / 2**20:.1f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
