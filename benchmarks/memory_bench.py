"""Memory per live vote, per decision held in memory, per seen id: tracemalloc, in-process.

    python benchmarks/memory_bench.py [--n 20000]

* live votes: N proposals on N/3 assets, none deciding (threshold out of reach), inside one
  window: the engine's books, expiry queues and seen ids, plus the consumer's live-vote map;
* decisions: N decisions (paper fills, so each is an open position's ledger entry first,
  then closed) held in the collective's ledger, as `rawe consensus` keeps its open and recent
  ones: the LedgerEntry, its Decision and tuples;
* freed books: the same N votes after their window, once `sweep` ran.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.collective import Collective
from rawe_cli.config import Settings
from rawe_cli.core import consensus as cs
from rawe_cli.core.weighting import AgentRecord, MajorityScheme
from rawe_cli.models import Bar, Direction, Proposal

AGENTS = [f"agent-{i:02d}" for i in range(30)]


def proposal(i: int, agent: str, asset: str, ts: float) -> Proposal:
    return Proposal(f"p-{i:012d}-{agent}", agent, asset, Direction.LONG, 0.01, 0.0, 0.5,
                    "narrative-1", "narrative_leads", ts)


def measure(build):  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    n = ap.parse_args().n

    def votes() -> cs.ConsensusEngine:
        engine = cs.ConsensusEngine(threshold=1e9, window=10.0)
        for a in AGENTS:
            engine.register(a)
        live: dict[str, str] = {}  # the consumer's proposal id -> entry id
        for i in range(n):
            p = proposal(i, AGENTS[i % 3], f"ASSET{i // 3:06d}", 0.0)
            engine.submit(p, 0.0)
            live[p.id] = f"1796160941634-{i}"
        engine.live = live  # type: ignore[attr-defined]
        return engine

    used, engine = measure(votes)
    print(f"live vote (book + expiry queue + seen id + consumer map): {used / n:,.0f} B each "
          f"({n:,} votes on {n // 3:,} assets)")
    freed_before = engine.books  # type: ignore[attr-defined]
    engine.sweep(11.0)  # type: ignore[attr-defined]
    print(f"after the window, sweep freed {freed_before - engine.books:,} books; "  # type: ignore[attr-defined]
          f"{engine.books} left")  # type: ignore[attr-defined]

    s = Settings(threshold=3.0, window=10.0, scheme="majority", max_open_positions=10 ** 9,
                 max_gross_exposure=1e9, max_position_fraction=1e-9)

    def decisions() -> Collective:
        col = Collective(s, {a: AgentRecord(a, a) for a in AGENTS}, MajorityScheme(),
                         PaperBroker())
        for i in range(n):
            asset = f"D{i:06d}"
            col.on_bar(Bar(float(i), asset, 10.0, 10.0, 10.0, 10.0, 1.0))
            for a in AGENTS[:3]:
                col.on_proposal(proposal(i, a, asset, float(i)), float(i))
        return col

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    col = decisions()
    gc.collect()
    full = tracemalloc.get_traced_memory()[0] - base
    held = len(col.ledger)
    col.ledger.clear()  # what the ledger entries alone held
    gc.collect()
    ledger_only = full - (tracemalloc.get_traced_memory()[0] - base)
    tracemalloc.stop()
    print(f"decision in memory: {ledger_only / held:,.0f} B per ledger entry (with its "
          f"Decision); {full / held:,.0f} B with its open position, the asset's mark and the "
          f"paper broker's order ({held:,})")


if __name__ == "__main__":
    main()
