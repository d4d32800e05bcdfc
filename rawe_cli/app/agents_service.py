"""`rawe agents`: N agents that read the market and publish proposals on the bus.

Who owns the feed: by default `rawe agents` does. It generates (or fetches) the market,
publishes every bar and narrative event on the market stream, and its agents act on them.
A second `rawe agents --feed bus` follows the market stream instead.

Redis going away is not fatal: publishing waits with backoff and says so; a restart that
redis-py's retry hid is seen by the server's run id changing; after either, the agents are
registered again (a Redis that came back empty has lost the registrations).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawe_cli.app.runtime import AgentPool, bus_secret, records_for
from rawe_cli.bus import codec
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.store import Store, shard_layout
from rawe_cli.bus.streams import Bus, connect, is_cluster_url, with_reconnect
from rawe_cli.config import Personality, Settings
from rawe_cli.errors import CodecError
from rawe_cli.feeds.base import Feed, Tick
from rawe_cli.models import Bar, Proposal

Say = Callable[[str], None]


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
        try:
            self.keys = await shard_layout(client, self.keys.namespace, o.settings.shards or 0,
                                           cluster=is_cluster_url(o.redis_url))
        except BaseException:
            await client.aclose()
            raise
        if self.keys.sharded:
            self.say(f"sharded: publishing each proposal to its asset's shard of "
                     f"{self.keys.shards} ({self.keys.of(0).proposals} ...)")
        bus, store = Bus(client, self.keys), Store(client, self.keys)
        records = list(records_for(o.personalities).values())

        async def register() -> None:
            await store.register_agents(records)

        await register()
        self.say(f"registered {len(records)} agents: {', '.join(r.name for r in records)}")
        if o.speed > 1 and o.feed is None and not o.follow_bus:
            self.say(f"note: at --speed {o.speed:g} event time runs ahead of the wall clock; "
                     "rawe consensus refuses market messages more than its clock_tolerance "
                     f"({o.settings.clock_tolerance:g} s) ahead: raise it to cover the run")
        pool = self.pool = AgentPool(o.personalities, o.settings)
        secret = bus_secret()
        started = time.monotonic()
        was_down = False
        server = await self._server_id(client)
        checked = time.monotonic()

        def say(msg: str) -> None:
            nonlocal was_down
            was_down = True
            self.say(msg)

        ticks = self._ticks(bus)
        try:
            async for tick in ticks:
                if self.stop.is_set() or (o.duration is not None
                                          and time.monotonic() - started >= o.duration):
                    break
                proposals = pool.on_market(tick.bars, tick.events)
                market = [] if o.follow_bus else [codec.encode_market(x)
                                                  for x in (*tick.bars, *tick.events)]
                batch = self._by_stream(proposals, secret)

                async def publish(market: list = market, batch: dict = batch) -> None:
                    await bus.add_many(self.keys.market, market)
                    for stream, entries in batch.items():
                        await bus.add_many(stream, entries)

                await with_reconnect(publish, say=say)
                if time.monotonic() - checked >= 1.0:
                    # redis-py retries a short outage silently: a restart is seen by the
                    # server's run id changing, and a Redis that came back empty has lost
                    # the registrations.
                    checked = time.monotonic()
                    now_id = await with_reconnect(lambda: self._server_id(client), say=say)
                    if now_id != server:
                        self.say(f"Redis restarted (server run id {server[:8]} -> "
                                 f"{now_id[:8]}): registering {len(records)} agents again")
                        server = now_id
                        was_down = True
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
            await ticks.aclose()  # a streaming feed stops its streams, in this loop
            with contextlib.suppress(Exception):
                await client.aclose()

    def _by_stream(self, proposals: list[Proposal], secret: str | None
                   ) -> dict[str, list[dict[str, str]]]:
        """The encoded proposals by the stream they go to (their asset's shard's)."""
        out: dict[str, list[dict[str, str]]] = {}
        for p in proposals:
            out.setdefault(self.keys.for_asset(p.asset).proposals, []).append(
                codec.encode_proposal(p, secret))
        return out

    def proposed(self, p: Proposal) -> None:
        self.say(f"proposal {p.id} {p.agent} {p.asset} {p.direction.value} "
                 f"size={p.size:.4f} ({p.signal_type})")

    @staticmethod
    async def _server_id(client: Any) -> str:
        """The Redis server's run id (new at every restart); "" where INFO is not known."""
        import redis.exceptions as rex

        try:
            info = await client.info("server")
        except rex.ResponseError:
            return ""
        return str(info.get("run_id", ""))

    async def _ticks(self, bus: Bus):  # -> AsyncIterator[Tick]
        o = self.opts
        if o.follow_bus:
            async for tick in self._follow(bus):
                yield tick
            return
        if o.feed is not None:
            async with contextlib.aclosing(o.feed.ticks()) as ticks:
                async for tick in ticks:
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
        tolerance = self.opts.settings.clock_tolerance
        while not self.stop.is_set():
            entries = await with_reconnect(
                lambda last=last: bus.tail(self.keys.market, last, count=2000, block_ms=1000),
                say=self.say)
            bars, events = [], []
            for entry_id, fields in entries:
                last = entry_id
                try:  # a bar stamped far ahead of the wall clock is refused
                    item = codec.decode_market(fields, time.time(), tolerance)
                except CodecError:
                    continue
                (bars if isinstance(item, Bar) else events).append(item)
            if bars or events:
                ts = max(x.timestamp for x in (*bars, *events))
                yield Tick(index, ts, "", tuple(bars), tuple(events))
                index += 1
