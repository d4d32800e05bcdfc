"""The services, wired: feed -> narrative engine -> agents -> bus -> consensus -> broker.

`run_embedded` is `rawe run`: everything in one process, around an embedded fakeredis (or a
real Redis with --redis-url), through the same bus and store code as the separate processes.
Each tick is processed in order (bars, signals, proposals published, proposals consumed,
exits, state saved), so the same seed gives the same run, fast or paced.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rawe_cli.brokers.base import Broker
from rawe_cli.bus import codec
from rawe_cli.bus.consumer import ProposalConsumer
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.store import Store
from rawe_cli.bus.streams import Bus, connect
from rawe_cli.collective import Collective, LedgerEntry
from rawe_cli.config import Personality, Settings
from rawe_cli.core.agent import Agent
from rawe_cli.core.narrative import NarrativeEngine, NarrativeParams
from rawe_cli.core.weighting import AgentRecord, WeightScheme
from rawe_cli.feeds.base import Feed, Tick
from rawe_cli.feeds.synthetic import SyntheticFeed, WorldParams
from rawe_cli.models import Bar, NarrativeEvent, Proposal

SECRET_ENV = "RAWE_BUS_SECRET"
REGIME_SCHEMES = ("regime", "meta")  # the schemes that follow the classified regime


def bus_secret() -> str | None:
    return os.environ.get(SECRET_ENV) or None


def make_scheme(settings: Settings) -> WeightScheme:
    from rawe_cli.core import weighting

    if settings.scheme == "majority":
        return weighting.MajorityScheme()
    if settings.scheme == "winrate":
        return weighting.WinRateScheme()
    from rawe_cli.core import learning  # the learned schemes

    return learning.make_learned_scheme(settings)


def round_trip_cost(settings: Settings) -> float:
    """Fees and slippage both ways, a fraction of notional."""
    return 2 * (settings.fee_bps + settings.slippage_bps) / 1e4


def make_learner(settings: Settings, bar_seconds: float | None = None) -> Any:
    from rawe_cli.core import learning

    if settings.scheme in learning.LEARNED:
        return learning.ProposalScorer(cost=round_trip_cost(settings),
                                       bar_seconds=bar_seconds or settings.bar_seconds)
    return None


def records_for(personalities: Iterable[Personality]) -> dict[str, AgentRecord]:
    return {p.name: AgentRecord(p.name, p.name.split(" #")[0]) for p in personalities}


class AgentPool:
    """The narrative engine and the agents reading its signals, at one bar size."""

    def __init__(self, personalities: list[Personality], settings: Settings | None = None,
                 bar_seconds: float | None = None) -> None:
        s = settings or Settings()
        bar = bar_seconds if bar_seconds is not None else s.bar_seconds
        self.bar_seconds = bar
        self.narratives = NarrativeEngine(NarrativeParams.resolved(
            s.narrative_half_life.seconds(bar), s.signal_cooldown.seconds(bar)))
        self.agents = [Agent(p, bar) for p in personalities]
        self.signals = 0

    def on_market(self, bars: Iterable[Bar], events: Iterable[NarrativeEvent]) -> list[Proposal]:
        signals = []
        for bar in bars:
            signals.extend(self.narratives.on_bar(bar))
        for event in events:
            signals.extend(self.narratives.on_event(event))
        self.signals += len(signals)
        proposals = []
        for sig in signals:
            for agent in self.agents:
                p = agent.consider(sig)
                if p is not None:
                    proposals.append(p)
        return proposals


def world_params(settings: Settings, **extra: Any) -> WorldParams:
    return WorldParams(symbols=settings.symbols, seed=settings.seed,
                       tick_seconds=settings.tick_seconds, **extra)


@dataclass(slots=True)
class RunOptions:
    settings: Settings
    personalities: list[Personality]
    ticks: int | None = None
    duration: float | None = None
    fast: bool = False
    speed: float = 50.0  # event seconds per wall second when not --fast
    redis_url: str | None = None
    broker: Broker | None = None  # default: the paper broker
    feed: Feed | None = None  # default: the synthetic world (paced unless fast)


@dataclass(slots=True)
class RunState:
    """What the dashboard and the summary show; rebuilt cheaply every refresh."""

    tick: int = 0
    ticks: int | None = None
    now: float = 0.0
    regime: str = ""
    proposals: int = 0
    signals: int = 0
    started: float = field(default_factory=time.monotonic)
    stopped_by: str = ""
    classifier: Any = None  # core.regime.RegimeClassifier when the scheme is "regime"
    signal: int | None = None  # the signal that stopped the run


def snapshot(col: Collective, state: RunState, consumer: ProposalConsumer | None,
             decisions: int | None = 40) -> dict[str, Any]:
    """A plain, JSON-ready picture of the collective."""
    entries = list(col.ledger.values())
    entries.sort(key=lambda e: (e.decision.timestamp, e.decision.id))
    if decisions is not None:
        entries = entries[-decisions:]
    stats = {
        "bar_seconds": col.bar_seconds,
        "ticks": state.tick,
        "event_time": state.now,
        "signals": state.signals,
        "proposals": state.proposals,
        "decisions": max(col.decisions_total, len(col.ledger)),
        "closed_positions": col.portfolio.closed_count,
        "engine": dict(col.engine.stats),
    }
    if consumer is not None:
        stats["dead_lettered"] = consumer.stats.dead_lettered
    return {
        "regime": state.regime,
        "stats": stats,
        "decisions": [e.to_dict() for e in entries],
        "agents": [col.records[n].to_dict() for n in col.records],
        "portfolio": col.portfolio_snapshot(),
    }


async def run_embedded(
    opts: RunOptions,
    *,
    on_start: Callable[[], None] | None = None,
    on_refresh: Callable[[dict[str, Any]], None] | None = None,
    refresh_every: float = 0.25,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`rawe run`: returns the final snapshot (all decisions)."""
    from rawe_cli.brokers.paper import PaperBroker

    s = opts.settings
    # Signals first: a Ctrl-C while connecting or restoring stops the run cleanly too.
    state = RunState(ticks=opts.ticks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        state.signal = signum
        stop.set()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_signal, signal.SIGINT)
        loop.add_signal_handler(signal.SIGTERM, on_signal, signal.SIGTERM)
    if on_start is not None:  # from here on a Ctrl-C or SIGTERM stops the run cleanly
        on_start()
    client = await connect(opts.redis_url)
    keys = Keys(s.namespace)
    bus, store = Bus(client, keys), Store(client, keys)
    broker = opts.broker or PaperBroker(fee_bps=s.fee_bps, slippage_bps=s.slippage_bps)

    def on_decision(entry: LedgerEntry) -> None:
        if log is not None:
            log(entry.line())

    col = Collective(s, records_for(opts.personalities), make_scheme(s), broker,
                     learner=make_learner(s), on_decision=on_decision)
    if opts.redis_url is not None:
        await store.restore(col)
    reconciliation = None
    reconcile = getattr(broker, "reconcile", None)  # brokers with a remote account
    if reconcile is not None:
        report = await asyncio.to_thread(reconcile, col, time.time())
        reconciliation = report.to_dict()
        for line in report.lines() if log is not None else ():
            log(line)
        await store.save(col)
    await store.register_agents(list(col.records.values()))
    consumer = ProposalConsumer(bus, store, col, consumer="run", secret=bus_secret())
    await consumer.start()
    await consumer.reclaim(0.0)
    pool = AgentPool(opts.personalities, s)
    secret = bus_secret()
    if s.scheme in REGIME_SCHEMES:
        from rawe_cli.core.regime import RegimeClassifier

        state.classifier = RegimeClassifier()
    feed = opts.feed or SyntheticFeed(world_params(s), opts.ticks,
                                      None if opts.fast else opts.speed)
    wall_start = time.monotonic()
    last_refresh = 0.0
    settle = _settler(broker) if opts.fast else None
    ticks = _until(feed.ticks(), stop)
    try:
        async for tick in ticks:
            if stop.is_set():
                state.stopped_by = "signal"
                break
            if opts.duration is not None and time.monotonic() - wall_start >= opts.duration:
                state.stopped_by = "duration"
                break
            await _one_tick(tick, col, pool, bus, consumer, store, state, secret, log, settle)
            if on_refresh is not None and time.monotonic() - last_refresh >= refresh_every:
                last_refresh = time.monotonic()
                on_refresh(snapshot(col, state, consumer))
            if opts.ticks is not None and state.tick >= opts.ticks:
                state.stopped_by = "ticks"
                break
        else:
            state.stopped_by = "signal" if stop.is_set() else (state.stopped_by or "feed ended")
        # the submissions still under way get their answers, and the orders still open one
        # last REST read, before the state is saved
        ending = _settler(broker)
        if ending is not None:
            await ending()
            col.poll_orders(state.now)
            await asyncio.to_thread(broker.catch_up, list(col.pending))  # type: ignore[attr-defined]
            col.poll_orders(state.now)
    finally:
        await ticks.aclose()  # a feed with streams closes them here, in this loop
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
        close = getattr(broker, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
    await store.save(col)
    final = snapshot(col, state, consumer, decisions=None)
    final["stats"]["stopped_by"] = state.stopped_by
    if state.signal is not None:
        final["stats"]["signal"] = state.signal
    if reconciliation is not None:
        final["reconciliation"] = reconciliation
    if hasattr(broker, "stats"):
        final["broker"] = {"name": broker.name, **broker.stats.to_dict()}
    feed_stats = getattr(feed, "stats", None)
    if feed_stats is not None:  # the Alpaca feeds: polls, stream drops, backfills
        final["feed"] = feed_stats.to_dict()
    if on_refresh is not None:
        on_refresh(snapshot(col, state, consumer))
    await client.aclose()
    return final


async def _until(ticks: AsyncIterator[Tick], stop: asyncio.Event) -> AsyncIterator[Tick]:
    """The feed's ticks, until `stop` is set (a paced feed's wait is cut short by it).

    Closing this generator closes the feed's (an async generator's `finally` runs here, in
    the engine's loop: that is where a streaming feed stops its streams)."""
    iterator = ticks.__aiter__()
    try:
        async with contextlib.aclosing(_race(iterator, stop)) as race:
            async for tick in race:
                yield tick
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def _race(iterator: AsyncIterator[Tick], stop: asyncio.Event) -> AsyncIterator[Tick]:
    while not stop.is_set():
        nxt = asyncio.ensure_future(iterator.__anext__())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({nxt, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this task is cancelled: the feed's step must end first
            stopper.cancel()
            if not nxt.done():
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
        if nxt not in done:
            return
        try:
            yield nxt.result()
        except StopAsyncIteration:
            return


def _settler(broker: Broker) -> Callable[[], Awaitable[None]] | None:
    """For a broker that works off the loop (Alpaca): a wait, in a thread, until every
    submission has its answer. `--fast` waits at the end of each tick: a synthetic world at
    full speed has no wall time for an order to travel in, and waiting makes a seed's run
    the same one each time. A paced run, and `rawe consensus`, never wait."""
    settle = getattr(broker, "settle", None)
    if settle is None:
        return None

    async def wait() -> None:
        if broker.busy:  # type: ignore[attr-defined]
            await asyncio.to_thread(settle)

    return wait


async def _one_tick(tick: Tick, col: Collective, pool: AgentPool, bus: Bus,
                    consumer: ProposalConsumer, store: Store, state: RunState,
                    secret: str | None, log: Callable[[str], None] | None,
                    settle: Callable[[], Awaitable[None]] | None = None) -> None:
    now = tick.timestamp
    if state.classifier is not None:  # regime scheme: weights follow the classified regime
        col.set_regime(state.classifier.update(tick.bars))
    closed = []
    for bar in tick.bars:
        closed.extend(col.on_bar(bar))
    proposals = pool.on_market(tick.bars, tick.events)
    await bus.add_many(bus.keys.proposals, [codec.encode_proposal(p, secret) for p in proposals])
    await consumer.drain(now)
    closed.extend(col.check_exits(now))
    if settle is not None:
        await settle()
    closed.extend(col.poll_orders(now))
    await store.save(col)
    state.tick = tick.index + 1
    state.now = now
    state.regime = tick.regime
    state.proposals += len(proposals)
    state.signals = pool.signals
    if log is not None:
        for t in closed:
            log(f"closed {t.decision_id} {t.asset} {t.direction.value} {t.reason} "
                f"pnl={t.pnl:+.2f} entry={t.entry_price:.4f} exit={t.exit_price:.4f}")
