"""The learning evidence over many seeds (the tests check seeds 11-13 of the same runs).

    python benchmarks/learning_evidence.py [--seeds 11-20] [--workers 2]

1. momentum world, 4,000 ticks, tests/data/edge_personalities.yaml (3 Edge + 3 Blind agents):
   majority vs hedge total return, and hedge's final mean weight of each trio.
2. regime-switching world, 5,000 ticks, the 5 shipped personalities: majority, hedge and
   regime total return.
3. the regime classifier's accuracy against the world's true regime (volatile = reversal).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics as st
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rawe_cli.backtest import run_backtest
from rawe_cli.config import Settings, load_personalities, pick_agents
from rawe_cli.core.regime import RegimeClassifier
from rawe_cli.feeds.scenarios import scenario_ticks
from rawe_cli.runtime import world_params

EDGE = Path(__file__).parent.parent / "tests" / "data" / "edge_personalities.yaml"


def edge_world(seed: int) -> dict[str, float]:
    s = Settings(seed=seed)
    ticks = list(scenario_ticks("momentum", world_params(s), 4000))
    team = load_personalities(EDGE)
    out: dict[str, float] = {}
    for scheme in ("majority", "hedge"):
        r = run_backtest(ticks, dataclasses.replace(s, scheme=scheme), team)
        out[scheme] = r.metrics["total_return"]
        if scheme == "hedge":
            out["edge_w"] = st.mean(a["weight"] for a in r.agents if a["name"][:4] == "Edge")
            out["blind_w"] = st.mean(a["weight"] for a in r.agents if a["name"][:5] == "Blind")
    return out


def regime_world(seed: int) -> dict[str, float]:
    s = Settings(seed=seed)
    ticks = list(scenario_ticks("regime-switching", world_params(s), 5000))
    team = pick_agents(load_personalities(None), 5, seed)
    out = {scheme: run_backtest(ticks, dataclasses.replace(s, scheme=scheme), team)
           .metrics["total_return"] for scheme in ("majority", "hedge", "regime")}
    clf = RegimeClassifier()
    hits = total = 0
    for t in ticks:
        label = clf.update(t.bars)
        if label is not None:
            total += 1
            hits += (label == "volatile") == (t.regime == "reversal")
    out["accuracy"] = hits / total
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="11-20")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    with ProcessPoolExecutor(a.workers) as ex:
        edge = list(ex.map(edge_world, seeds))
        reg = list(ex.map(regime_world, seeds))
    n = len(seeds)
    print("1. momentum world, 3 Edge + 3 Blind agents, 4,000 ticks")
    print("seed  majority    hedge   w(Edge)  w(Blind)")
    for seed, o in zip(seeds, edge, strict=True):
        print(f"{seed:4d}  {o['majority']:+8.2%} {o['hedge']:+8.2%}  {o['edge_w']:7.2f}  "
              f"{o['blind_w']:7.2f}")
    print(f"mean  {st.mean(o['majority'] for o in edge):+8.2%} "
          f"{st.mean(o['hedge'] for o in edge):+8.2%}  "
          f"{st.mean(o['edge_w'] for o in edge):7.2f}  {st.mean(o['blind_w'] for o in edge):7.2f}")
    print(f"hedge > majority: {sum(o['hedge'] > o['majority'] for o in edge)}/{n}; "
          f"w(Edge) > w(Blind): {sum(o['edge_w'] > o['blind_w'] for o in edge)}/{n}")
    print()
    print("2. regime-switching world, 5 shipped personalities, 5,000 ticks")
    print("seed  majority    hedge   regime  classifier accuracy")
    for seed, o in zip(seeds, reg, strict=True):
        print(f"{seed:4d}  {o['majority']:+8.2%} {o['hedge']:+8.2%} {o['regime']:+8.2%}  "
              f"{o['accuracy']:.1%}")
    print(f"mean  {st.mean(o['majority'] for o in reg):+8.2%} "
          f"{st.mean(o['hedge'] for o in reg):+8.2%} {st.mean(o['regime'] for o in reg):+8.2%}  "
          f"{st.mean(o['accuracy'] for o in reg):.1%}")
    print(f"regime > hedge: {sum(o['regime'] > o['hedge'] for o in reg)}/{n}; "
          f"hedge > majority: {sum(o['hedge'] > o['majority'] for o in reg)}/{n}")


if __name__ == "__main__":
    main()
