"""The long-running processes around one real Redis: `rawe consensus` and `rawe agents`.

Who owns the feed: by default `rawe agents` does. It generates (or fetches) the market,
publishes every bar and narrative event on the market stream, and its agents act on them.
`rawe consensus` follows the market stream for prices (fills, marks, exits). A second
`rawe agents --feed bus` follows the market stream too, instead of generating another world.

Time: the agents' synthetic world starts at the wall clock and runs at `--speed` event
seconds per wall second (the command's default is 20, at most 6 hours ahead of the wall
clock: cli/agents.py; 1 makes event time wall time). The consensus engine's `now` is the
later of the wall clock and the newest bar it has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawe_cli import codec
from rawe_cli.brokers.base import Broker
from rawe_cli.bus import Bus, connect, connection_errors, with_reconnect
from rawe_cli.collective import Collective, LedgerEntry
from rawe_cli.config import Personality, Settings
from rawe_cli.consumer import ProposalConsumer
from rawe_cli.errors import CodecError, Fenced
from rawe_cli.feeds.base import Feed, Tick
from rawe_cli.keys import Keys
from rawe_cli.lease import Lease
from rawe_cli.models import Bar, Proposal
from rawe_cli.runtime import (
    REGIME_SCHEMES,
    AgentPool,
    RunState,
    bus_secret,
    make_learner,
    make_scheme,
    records_for,
    snapshot,
)
from rawe_cli.store import Store

Say = Callable[[str], None]


def default_owner(role: str) -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


class LostLease(Exception):
    """Another engine took the lease (or Redis forgot it and someone else got it first)."""


# -- consensus ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ConsensusOptions:
    settings: Settings
    redis_url: str
    broker: Broker | None = None
    lease_ms: int = 3000
    owner: str = ""
    duration: float | None = None  # wall seconds, then stop (tests, scripts)


class ConsensusService:
    """One engine: standby until it holds the lease, then active until stopped or fenced."""

    def __init__(self, opts: ConsensusOptions, say: Say,
                 on_refresh: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.opts = opts
        self.say = say
        self.on_refresh = on_refresh
        self.owner = opts.owner or default_owner("consensus")
        self.keys = Keys(opts.settings.namespace)
        self.stop = asyncio.Event()
        self.col: Collective | None = None
        self.state = RunState()
        self.started = time.monotonic()
        self.classifier: Any = None  # the regime scheme's classifier, fed by market bars
        self._dead_seen: dict[str, int] = {}  # dead-letter reasons already reported

    def _time_left(self) -> bool:
        d = self.opts.duration
        return not self.stop.is_set() and (d is None or time.monotonic() - self.started < d)

    async def run(self) -> None:
        client = await connect(self.opts.redis_url)
        try:
            while self._time_left():
                try:
                    await self._serve(client)
                except LostLease as exc:
                    self.say(f"lost the lease ({exc}); standing by")
                except Fenced as exc:
                    self.say(f"fenced: {exc}; standing by")
        finally:
            with contextlib.suppress(Exception):
                await Lease(client, self.keys, self.owner).release()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _acquire(self, client: Any) -> tuple[Lease, int] | None:
        lease = Lease(client, self.keys, self.owner, self.opts.lease_ms)
        announced = False
        while self._time_left():
            token = await with_reconnect(lease.try_acquire, say=self.say)
            if token is not None:
                self.say(f"active: {self.owner} holds the lease (fencing token {token})")
                return lease, token
            if not announced:
                holder = await lease.holder()
                self.say(f"standing by: {holder} holds the lease")
                announced = True
            await asyncio.sleep(min(0.25, self.opts.lease_ms / 4000))
        return None

    async def _serve(self, client: Any) -> None:
        got = await self._acquire(client)
        if got is None:
            return
        lease, token = got
        s = self.opts.settings
        from rawe_cli.brokers.paper import PaperBroker

        broker = self.opts.broker or PaperBroker(fee_bps=s.fee_bps, slippage_bps=s.slippage_bps)
        bus, store = Bus(client, self.keys), Store(client, self.keys)
        col = Collective(s, {}, make_scheme(s), broker, learner=make_learner(s),
                         on_decision=self._log_decision)
        col.fence = token
        self.col = col
        loaded = await store.restore(col)
        self.say(f"restored {loaded['agents']} agents, {loaded['decisions']} decisions, "
                 f"{loaded['positions']} open positions")
        reconcile = getattr(broker, "reconcile", None)  # brokers with a remote account
        if reconcile is not None:
            report = await asyncio.to_thread(reconcile, col, time.time())
            for line in report.lines():
                self.say(line)
            await store.save(col, token)
        if s.scheme in REGIME_SCHEMES:
            from rawe_cli.core.regime import RegimeClassifier

            self.classifier = RegimeClassifier()
        consumer = ProposalConsumer(bus, store, col, consumer=self.owner, secret=bus_secret(),
                                    fence=token,
                                    refresh_agents=lambda: self._sync_agents(store))
        await consumer.start()
        market_last = await self._market_tail(client)
        reclaimed = await consumer.reclaim(self._now())
        if reclaimed:
            self.say(f"reclaimed {reclaimed} pending proposals")
        renew_every = self.opts.lease_ms / 3000
        last_renew = last_chores = last_refresh = last_market = 0.0
        while self._time_left():
            try:
                mono = time.monotonic()
                if mono - last_renew >= renew_every:
                    if not await lease.renew():
                        raise LostLease("lease expired or taken")
                    last_renew = mono
                if mono - last_market >= 0.02:  # bars come seconds apart: 20 ms is plenty
                    last_market = mono
                    market_last = await self._follow_market(bus, market_last)
                got = await consumer.poll(self._now, block_ms=100)
                if 0 < got < 64:
                    # Under load, let a burst gather for a millisecond: fewer, larger
                    # batches cost fewer round trips per proposal.
                    await asyncio.sleep(0.001)
                if mono - last_chores >= 0.5:
                    last_chores = mono
                    await self._sync_agents(store)
                    now = self._now()
                    # entries a deposed engine read after our takeover and never applied
                    taken = await consumer.claim_stale(now, self.opts.lease_ms)
                    if taken:
                        self.say(f"claimed {taken} proposals left idle by another engine")
                    col.check_exits(now)
                    col.poll_orders(now)
                    await consumer.expire(now)  # saves the state with the expired acks
                    self._report_dead_letters(consumer)
                if self.on_refresh is not None and mono - last_refresh >= 0.25:
                    last_refresh = mono
                    self.state.proposals = consumer.stats.read  # the header's count
                    self.on_refresh(snapshot(col, self.state, consumer))
            except connection_errors() as exc:
                await self._reconnect(client, exc, bus, lease, consumer, store)
                market_last = "0-0" if market_last != "$" else market_last
        with contextlib.suppress(*connection_errors(), Fenced):
            await store.save(col, token)

    async def _reconnect(self, client: Any, exc: BaseException, bus: Bus, lease: Lease,
                         consumer: ProposalConsumer, store: Store) -> None:
        """Wait for Redis with backoff; then make sure it holds our state again."""
        self.say(f"Redis unreachable ({exc.__class__.__name__}); reconnecting with backoff")
        started = time.monotonic()
        await with_reconnect(client.ping, say=lambda _m: None)
        self.say(f"Redis reachable again after {time.monotonic() - started:.1f} s")
        await consumer.start()  # the group is gone if Redis lost its data
        if not await lease.renew():
            token = await lease.try_acquire()
            if token is None:
                raise LostLease("another engine holds the lease after the outage")
            self.say(f"lease re-acquired (fencing token {token})")
            consumer.fence = token
            assert self.col is not None
            self.col.fence = token
        assert self.col is not None
        self.col.mark_all_dirty()  # a restarted Redis may have lost everything: rewrite it
        await store.save(self.col, consumer.fence)

    async def _sync_agents(self, store: Store) -> None:
        """Add agents registered since the last look."""
        assert self.col is not None
        known = self.col.records
        for name, rec in (await store.agents()).items():
            if name not in known:
                self.col.add_agent(rec)

    async def _market_tail(self, client: Any) -> str:
        """Take the last prices from the recent market stream; return where to follow it.

        Only marks: exits and learning happen on bars that arrive from now on.
        """
        assert self.col is not None
        recent = await client.xrevrange(self.keys.market, count=2000)
        for _, fields in reversed(recent):
            try:
                item = codec.decode_market(fields, self._now())
            except CodecError:
                continue  # dead-lettered when it was first read
            if isinstance(item, Bar):
                self.col.portfolio.mark(item.symbol, item.close)
                self.col.broker.on_price(item.symbol, item.close, item.timestamp)
                self.state.now = max(self.state.now, item.timestamp)
        return recent[0][0] if recent else "0-0"

    async def _follow_market(self, bus: Bus, last_id: str) -> str:
        assert self.col is not None
        entries = await bus.tail(self.keys.market, last_id, count=5000)
        bars: list[Bar] = []
        for entry_id, fields in entries:
            last_id = entry_id
            try:
                item = codec.decode_market(fields, self._now())
            except CodecError as exc:
                await bus.dead_letter(self.keys.market, entry_id, fields, str(exc), self._now())
                continue
            if isinstance(item, Bar):
                bars.append(item)
                self.col.on_bar(item)
                self.state.now = max(self.state.now, item.timestamp)
                self.state.tick += 1
        if bars and self.classifier is not None:
            self.col.set_regime(self.classifier.update(bars))
        return last_id

    def _now(self) -> float:
        return max(time.time(), self.state.now)

    def _log_decision(self, entry: LedgerEntry) -> None:
        self.say(entry.line())

    def _report_dead_letters(self, consumer: ProposalConsumer) -> None:
        """One line when proposals were dead-lettered since the last look, with why."""
        seen = self._dead_seen
        now = dict(consumer.stats.reasons)
        new = {k: v - seen.get(k, 0) for k, v in now.items() if v > seen.get(k, 0)}
        if new:
            why = ", ".join(f"{n} {k}" for k, n in sorted(new.items()))
            self.say(f"dead-lettered {sum(new.values())} proposal(s) ({why}); read them with "
                     f"redis-cli XRANGE {self.keys.dead_letter} - +")
        self._dead_seen = now


# -- agents ------------------------------------------------------------------------------------


@dataclass(slots=True)
class AgentsOptions:
    settings: Settings
    personalities: list[Personality]
    redis_url: str
    feed: Feed | None = None  # None: the synthetic world, paced; "bus" handled by follow_bus
    follow_bus: bool = False  # read the market stream instead of owning a feed
    speed: float = 1.0
    ticks: int | None = None
    duration: float | None = None


class AgentsService:
    def __init__(self, opts: AgentsOptions, say: Say) -> None:
        self.opts = opts
        self.say = say
        self.keys = Keys(opts.settings.namespace)
        self.stop = asyncio.Event()
        self.published = 0
        self.ticks = 0
        self.pool: AgentPool | None = None  # for the heartbeat's signal count
        self.now = 0.0  # event time of the last tick

    async def run(self) -> None:
        o = self.opts
        client = await connect(o.redis_url)
        bus, store = Bus(client, self.keys), Store(client, self.keys)
        records = list(records_for(o.personalities).values())

        async def register() -> None:
            await store.register_agents(records)

        await register()
        self.say(f"registered {len(records)} agents: {', '.join(r.name for r in records)}")
        pool = self.pool = AgentPool(o.personalities, o.settings)
        secret = bus_secret()
        started = time.monotonic()
        was_down = False

        def say(msg: str) -> None:
            nonlocal was_down
            was_down = True
            self.say(msg)

        try:
            async for tick in self._ticks(bus):
                if self.stop.is_set() or (o.duration is not None
                                          and time.monotonic() - started >= o.duration):
                    break
                proposals = pool.on_market(tick.bars, tick.events)
                market = [] if o.follow_bus else [codec.encode_market(x)
                                                  for x in (*tick.bars, *tick.events)]
                batch = [codec.encode_proposal(p, secret) for p in proposals]

                async def publish(market: list = market, batch: list = batch) -> None:
                    await bus.add_many(self.keys.market, market)
                    await bus.add_many(self.keys.proposals, batch)

                await with_reconnect(publish, say=say)
                if was_down:  # Redis may have restarted empty: register again
                    await with_reconnect(register, say=self.say)
                    was_down = False
                self.published += len(proposals)
                self.ticks += 1
                self.now = tick.timestamp
                for p in proposals:
                    self.proposed(p)
                if o.ticks is not None and self.ticks >= o.ticks:
                    break
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    def proposed(self, p: Proposal) -> None:
        self.say(f"proposal {p.id} {p.agent} {p.asset} {p.direction.value} "
                 f"size={p.size:.4f} ({p.signal_type})")

    async def _ticks(self, bus: Bus):  # -> AsyncIterator[Tick]
        o = self.opts
        if o.follow_bus:
            async for tick in self._follow(bus):
                yield tick
            return
        if o.feed is not None:
            async for tick in o.feed.ticks():
                yield tick
            return
        from rawe_cli.feeds.synthetic import SyntheticFeed, WorldParams

        s = o.settings
        params = WorldParams(symbols=s.symbols, seed=s.seed, tick_seconds=s.tick_seconds,
                             start=float(int(time.time())))
        async for tick in SyntheticFeed(params, o.ticks, o.speed).ticks():
            yield tick

    async def _follow(self, bus: Bus):  # -> AsyncIterator[Tick]
        """Ticks rebuilt from the market stream another process publishes."""
        last = "$"
        index = 0
        newest = time.time()  # the follower's clock: a bar far ahead of it is refused
        while not self.stop.is_set():
            entries = await with_reconnect(
                lambda last=last: bus.tail(self.keys.market, last, count=2000, block_ms=1000),
                say=self.say)
            bars, events = [], []
            for entry_id, fields in entries:
                last = entry_id
                try:
                    item = codec.decode_market(fields, max(newest, time.time()))
                except CodecError:
                    continue
                newest = max(newest, item.timestamp)
                (bars if isinstance(item, Bar) else events).append(item)
            if bars or events:
                ts = max(x.timestamp for x in (*bars, *events))
                yield Tick(index, ts, "", tuple(bars), tuple(events))
                index += 1
