"""The engine's CPU per proposal without publishers: a stream filled beforehand, drained in
this process by the real ProposalConsumer + Collective + Store against a real Redis.

    python benchmarks/apply_bench.py [--proposals 30000] [--redis-url URL] [--profile FILE]
    PYTHONPATH=/tmp/old python benchmarks/apply_bench.py   # another checkout's engine

The workload is e2e_bench.py's: 30 agents in groups of 3, 250 assets, each group's three
agreeing proposals back to back (a decision per three proposals, recorded as skipped: no
prices). Reported: this process's CPU (`time.process_time`) and Redis' (`INFO cpu`) per
proposal, over the drain only; the namespace `apb-<random>` is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

import redis

from rawe_cli.app.runtime import make_learner, make_scheme
from rawe_cli.app.services import settle_heap
from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.bus import codec
from rawe_cli.bus.consumer import ProposalConsumer
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.store import Store
from rawe_cli.bus.streams import Bus, connect
from rawe_cli.collective import Collective, LedgerEntry
from rawe_cli.config import Settings
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.models import Direction, Proposal


def fill(r: redis.Redis, keys: Keys, n: int, now: float) -> None:
    agents = [f"a{i:03d}" for i in range(30)]
    pipe = r.pipeline(transaction=False)
    for name in agents:
        pipe.hsetnx(keys.agents, name, json.dumps(AgentRecord(name, "bench").to_dict()))
    for i in range(n):
        k, j = divmod(i, 3)
        p = Proposal(f"p-{i}", agents[(k % 10) * 3 + j], f"A{k % 250:04d}", Direction.LONG,
                     0.05, 0.01, 0.5, "bench", "manual", now)
        pipe.xadd(keys.proposals, codec.encode_proposal(p))
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run(a: argparse.Namespace) -> None:
    keys = Keys(f"apb-{uuid.uuid4().hex[:8]}")
    r = redis.Redis.from_url(a.redis_url, decode_responses=True)
    s = Settings(namespace=keys.namespace, threshold=3.0, window=30.0)
    client = await connect(a.redis_url, retries=1)
    lines: list[str] = []

    def log(entry: LedgerEntry) -> None:
        lines.append(entry.line())

    col = Collective(s, {}, make_scheme(s), PaperBroker(), learner=make_learner(s),
                     on_decision=log, write_ahead=True)
    now = time.time()
    try:
        fill(r, keys, a.proposals, now)
        store = Store(client, keys)
        await store.restore(col)
        consumer = ProposalConsumer(Bus(client, keys), store, col, consumer="bench")
        await consumer.commit(now)
        await consumer.start()
        settle_heap()  # as `rawe consensus` does after its start-up
        profile = None
        if a.profile:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        c0, r0, w0 = time.process_time(), redis_cpu(r), time.perf_counter()
        total = 0
        while total < a.proposals:
            if a.pipelined:  # as `rawe consensus` reads (ProposalConsumer.poll_ahead)
                total += await consumer.poll_ahead(time.time, block_ms=None, count=a.count)
            else:
                total += await consumer.poll(time.time, block_ms=None, count=a.count)
        await consumer.settle()
        c1, r1, w1 = time.process_time(), redis_cpu(r), time.perf_counter()
        if profile is not None:
            profile.disable()
            profile.dump_stats(a.profile)
        if consumer.stats.decisions != a.proposals // 3:
            raise SystemExit(f"expected {a.proposals // 3} decisions, got "
                             f"{consumer.stats.decisions}")
        n = a.proposals
        print(f"{n:,} proposals, {consumer.stats.decisions:,} decisions: engine "
              f"{1e6 * (c1 - c0) / n:.1f} us CPU per proposal, Redis {1e6 * (r1 - r0) / n:.1f}"
              f" us, {n / (w1 - w0):,.0f} proposals/s (load {os.getloadavg()[0]:.1f})")
    finally:
        for key in r.scan_iter(match=f"{keys.namespace}:*", count=1000):
            r.delete(key)
        r.close()
        await client.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-url", default=os.environ.get("RAWE_REDIS_URL",
                                                          "redis://127.0.0.1:6379/0"))
    ap.add_argument("--proposals", type=int, default=30_000)
    ap.add_argument("--profile", default="", help="cProfile the drain into this file")
    ap.add_argument("--count", type=int, default=2000, help="XREADGROUP COUNT")
    ap.add_argument("--pipelined", action="store_true",
                    help="read ahead and write behind, as rawe consensus does (poll_ahead)")
    a = ap.parse_args()
    a.proposals -= a.proposals % 3
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
