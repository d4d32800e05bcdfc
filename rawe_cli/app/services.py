"""`rawe consensus`, the long-running engine around one real Redis (`rawe agents` is in
agents_service.py).

`rawe consensus` follows the market stream for prices (fills, marks, exits); by default
`rawe agents` owns the feed and publishes it there.

Time: the agents' synthetic world starts at the wall clock and runs at `--speed` event
seconds per wall second (the command's default is 20, at most 6 hours ahead of the wall
clock: cli/agents.py; 1 makes event time wall time). The consensus engine's `now` is the
later of the wall clock and the newest bar it has seen; a bar more than `clock_tolerance`
ahead of the wall clock is refused, so it cannot move that clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawe_cli.app.runtime import (
    REGIME_SCHEMES,
    RunState,
    bus_secret,
    make_learner,
    make_scheme,
    snapshot,
)
from rawe_cli.brokers.base import Broker
from rawe_cli.bus import archive, codec
from rawe_cli.bus.consumer import BATCH, ProposalConsumer
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.lease import RENEWED, STATE_GONE, Lease, new_epoch
from rawe_cli.bus.store import Store, apply_tallies, shard_layout
from rawe_cli.bus.streams import (
    Bus,
    Token,
    connect,
    connection_errors,
    is_cluster_url,
    with_reconnect,
)
from rawe_cli.collective import PENDING, REJECTED, Collective, LedgerEntry
from rawe_cli.config import Settings
from rawe_cli.errors import CodecError, Fenced, RaweError, RedisLost, StateDiverged
from rawe_cli.models import Bar, OrderStatus
from rawe_cli.shards import Shard, budget, open_positions_share

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
    shard: Shard | None = None  # `--shard K/N`: the assets (and capital share) it owns


ARCHIVE_EVERY = 5.0  # wall seconds between two looks for decisions past the retention
ARCHIVE_BATCH = 500


GC_YOUNG = 50_000  # allocations between young collections while serving (CPython: 700)


def settle_heap() -> None:
    """After start-up (imports, restored state): move what is alive now out of the garbage
    collector's scans, and collect the young generation less often (about 1 us of CPU per
    proposal less at full load, benchmarks/README.md); cycles are still found, in fewer,
    larger passes. Called again after standing by, it first unfreezes, so that the previous
    collective's objects can be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 10)


class ConsensusService:
    """One engine: standby until it holds the lease, then active until stopped or fenced.

    Redis going away is not fatal (README, "Nothing lost, nothing twice"): the engine waits
    for it with backoff; if it came back with the state, it carries on; if it came back empty
    (the state marker is gone), the engine that held a valid lease when it went away writes
    its whole state back and carries on, while a standby, which holds no state, never starts
    from nothing there.
    """

    def __init__(self, opts: ConsensusOptions, say: Say,
                 on_refresh: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.opts = opts
        self.say = say
        self.on_refresh = on_refresh
        self.owner = opts.owner or default_owner("consensus")
        shard = opts.shard
        self.keys = (Keys(opts.settings.namespace, shard.count, shard.index) if shard
                     else Keys(opts.settings.namespace))
        self.stop = asyncio.Event()
        self.col: Collective | None = None
        self.state = RunState()
        self.started = time.monotonic()
        self.classifier: Any = None  # the regime scheme's classifier, fed by market bars
        self._dead_seen: dict[str, int] = {}  # dead-letter reasons already reported
        self.marker = ""  # the collective's state marker, as this engine last saw it
        self.renewed = -math.inf  # monotonic time the lease was last known to be ours
        self._noted_bad: dict[str, str] = {}  # unreadable agent records already reported
        self._archive_error = ""  # the last archive failure reported

    def _time_left(self) -> bool:
        d = self.opts.duration
        return not self.stop.is_set() and (d is None or time.monotonic() - self.started < d)

    async def run(self) -> None:
        client = await connect(self.opts.redis_url, retries=1)
        try:
            shard = self.opts.shard
            await shard_layout(client, self.keys.namespace, shard.count if shard else 0,
                               cluster=is_cluster_url(self.opts.redis_url), engine=True)
            _, line = await Store(client, self.keys).persistence()
            self.say(f"Redis persistence: {line}")
            if shard is not None:
                s = self.opts.settings
                self.say(f"shard {shard}: the assets whose crc32 mod {shard.count} is "
                         f"{shard.index}, cash {s.initial_cash / shard.count:.2f} of "
                         f"{s.initial_cash:.2f}, max_open_positions "
                         f"{open_positions_share(s.max_open_positions, shard)} of "
                         f"{s.max_open_positions}; keys "
                         f"{self.keys.proposals.rsplit(':', 1)[0]}:...")
            while self._time_left():
                try:
                    await self._serve(client)
                except LostLease as exc:
                    self.say(f"lost the lease ({exc}); standing by")
                except Fenced as exc:
                    self.say(f"fenced: {exc}; standing by")
                except StateDiverged as exc:
                    self.say(f"Redis disagrees with this engine's memory ({exc}); nothing was "
                             "written; restoring from Redis")
                    with contextlib.suppress(*connection_errors()):
                        await Lease(client, self.keys, self.owner).release()
                except (*connection_errors(), RedisLost) as exc:
                    # while starting (restore, reclaim): nothing was decided that is not
                    # still pending on the stream; start again
                    self.say(f"Redis went away while starting ({exc.__class__.__name__}); "
                             "starting again")
                    with contextlib.suppress(*connection_errors()):
                        await Lease(client, self.keys, self.owner).release()
        finally:
            with contextlib.suppress(Exception):
                await Lease(client, self.keys, self.owner).release()
            with contextlib.suppress(Exception):
                await client.aclose()
            close = getattr(self.opts.broker, "close", None)  # Alpaca: its loop and stream
            if close is not None:
                await asyncio.to_thread(close)

    async def _acquire(self, client: Any) -> tuple[Lease, Token] | None:
        lease = Lease(client, self.keys, self.owner, self.opts.lease_ms)
        announced = ""
        while self._time_left():
            before = time.monotonic()
            got = await with_reconnect(lambda: lease.try_acquire(self.marker), say=self.say)
            if got.outcome == "ok" and got.token is not None:
                if self.marker and got.marker != self.marker:
                    self.say(f"the state marker changed ({self.marker} -> {got.marker}): "
                             "another engine started a new collective")
                if got.fresh:
                    self.say(f"no RAWE state in Redis under namespace {self.keys.namespace!r}:"
                             f" starting a new collective (state marker {got.marker})")
                self.marker = got.marker
                self.renewed = before
                self.say(f"active: {self.owner} holds the lease (fencing token "
                         f"{got.token.counter}, epoch {got.token.epoch})")
                return lease, got.token
            if got.outcome == "empty":
                if announced != "empty":
                    self.say(f"Redis came back without the collective's state (state marker "
                             f"{self.marker} is gone): this standby holds no state and will "
                             "not start from nothing; waiting for the engine that holds it "
                             "to write it back (restart this process to start a new, empty "
                             "collective instead)")
                announced = "empty"
            else:
                if got.marker:
                    self.marker = got.marker
                if announced != "held":
                    self.say(f"standing by: {got.holder} holds the lease")
                announced = "held"
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
        shard = self.opts.shard
        if shard is not None:  # this shard's share of the capital (docs/sharding.md)
            s = budget(s, shard)
        col = Collective(s, {}, make_scheme(s), broker, learner=make_learner(s),
                         on_decision=self._log_decision, write_ahead=True)
        if shard is not None:  # sizes are fractions of the collective's equity: N x its own
            col.limits = dataclasses.replace(col.limits, equity_scale=float(shard.count))
        col.fence = token.counter
        self.col = col
        loaded = await store.restore(col)
        self.say(f"restored {loaded['agents']} agents, {loaded['decisions']} decisions, "
                 f"{loaded['positions']} open positions")
        consumer = ProposalConsumer(bus, store, col, consumer=self.owner, secret=bus_secret(),
                                    fence=token, max_ahead=s.clock_tolerance,
                                    lookup_agent=lambda name: self._lookup_agent(store, name),
                                    misrouted=shard.misrouted if shard else None)
        self._note_bad_state(store, consumer)
        reconcile = getattr(broker, "reconcile", None)  # brokers with a remote account
        if reconcile is not None:
            report = await asyncio.to_thread(reconcile, col, time.time())
            for line in report.lines():
                self.say(line)
        else:
            self._unsent_after_restart(col)
        await consumer.commit(self._now())
        if s.scheme in REGIME_SCHEMES:
            from rawe_cli.core.regime import RegimeClassifier

            self.classifier = RegimeClassifier()
        await consumer.start()
        settle_heap()
        market_last = await self._market_tail(client)
        reclaimed = await consumer.reclaim(self._now())
        if reclaimed:
            self.say(f"reclaimed {reclaimed} pending proposals")
        # Bars published before this point were taken as marks only (above); the ones from
        # here on are read, checked and dead-lettered when bad.
        self.say(f"listening: proposals on {self.keys.proposals}, bars on {self.keys.market}")
        # A broker off the loop (Alpaca) gathers its events by itself: apply them at every
        # turn (a queue read); one that answers when asked is polled with the chores.
        events = hasattr(broker, "updates")
        renew_every = self.opts.lease_ms / 3000
        last_renew = last_chores = last_refresh = last_market = last_archive = 0.0
        while self._time_left():
            self._hold_lines()
            try:
                mono = time.monotonic()
                if mono - last_renew >= renew_every:
                    renewed = await lease.renew()
                    if renewed == STATE_GONE:
                        raise RedisLost("the lease and the state marker are gone")
                    if renewed != RENEWED:
                        raise LostLease("lease expired or taken")
                    self.renewed = last_renew = mono
                if mono - last_market >= 0.02:  # bars come seconds apart: 20 ms is plenty
                    last_market = mono
                    market_last = await self._follow_market(bus, market_last, consumer)
                got_n = await consumer.poll_ahead(self._now, block_ms=100, count=BATCH)
                if events:
                    col.poll_orders(self._now())
                if 0 < got_n < 64:
                    # Under load, let a burst gather for a millisecond: fewer, larger
                    # batches cost fewer round trips per proposal.
                    await asyncio.sleep(0.001)
                if mono - last_chores >= 0.5:
                    last_chores = mono
                    await self._sync_agents(store, consumer)
                    if shard is not None:
                        await self._share_outcomes(store)
                    now = self._now()
                    # entries a deposed engine read after our takeover and never applied
                    taken = await consumer.claim_stale(now, self.opts.lease_ms)
                    if taken:
                        self.say(f"claimed {taken} proposals left idle by another engine")
                    col.check_exits(now)
                    col.poll_orders(now)
                    col.engine.sweep(now)  # free the books of assets without live votes
                    await consumer.expire(now)  # saves the state with the expired acks
                    self._report_dead_letters(consumer)
                    col.prune(now, keep_seconds=max(2 * col.engine.window, 60.0))
                if mono - last_archive >= ARCHIVE_EVERY:
                    last_archive = mono
                    await self._archive(store, consumer)
                if self.on_refresh is not None and mono - last_refresh >= 0.25:
                    last_refresh = mono
                    self.state.proposals = consumer.stats.read  # the header's count
                    self.on_refresh(snapshot(col, self.state, consumer))
            except (*connection_errors(), RedisLost) as exc:
                self._release_lines()  # what it says while Redis is away shows at once
                failed = await consumer.abandon()
                if failed is not None and not isinstance(failed, (*connection_errors(),
                                                                  RedisLost)):
                    raise failed from exc  # the write on its way was fenced, or diverged
                market_last = await self._recover(client, exc, time.monotonic(), lease,
                                                  consumer, store, market_last)
            except BaseException:
                self._release_lines()
                await consumer.abandon()
                raise
        with contextlib.suppress(*connection_errors(), Fenced, RedisLost):
            await consumer.finish_reads(self._now())
            await consumer.commit(self._now())
        self._release_lines()

    async def _recover(self, client: Any, exc: BaseException, failed_at: float, lease: Lease,
                       consumer: ProposalConsumer, store: Store, market_last: str) -> str:
        """Redis went away or lost its data: wait for it, then make sure it holds our state
        again (or stand by). Returns where to follow the market stream from. Redis going
        away again meanwhile starts the recovery over (from the first failure's time)."""
        while True:
            try:
                last = await self._recover_once(client, exc, failed_at, lease, consumer,
                                                store, market_last)
                # what was delivered to this engine and never applied (a read cancelled, or
                # a reply lost with the connection): nobody else would claim it
                taken = await consumer.recover_own(self._now())
                if taken:
                    self.say(f"applied {taken} proposals read before the outage")
                return last
            except (*connection_errors(), RedisLost) as again:
                exc = again

    async def _recover_once(self, client: Any, exc: BaseException, failed_at: float,
                            lease: Lease, consumer: ProposalConsumer, store: Store,
                            market_last: str) -> str:
        col = self.col
        assert col is not None
        # Did this engine hold a valid lease when it noticed? Then nobody else can have been
        # active in the Redis that went away, and its state is the newest there is.
        since = failed_at - self.renewed
        held = since < self.opts.lease_ms / 1000
        if isinstance(exc, RedisLost):
            self.say(f"Redis lost its data under this engine ({exc})")
        else:
            self.say(f"Redis unreachable ({exc.__class__.__name__}); reconnecting with backoff")
            started = time.monotonic()
            await with_reconnect(client.ping, say=lambda _m: None)
            self.say(f"Redis reachable again after {time.monotonic() - started:.1f} s")
        marker = await with_reconnect(store.marker, say=self.say)
        if marker == self.marker:  # the data survived (AOF), or no restart at all
            await consumer.start()
            if await lease.renew() != RENEWED:
                got = await lease.try_acquire(self.marker)
                if got.outcome != "ok" or got.token is None:
                    raise LostLease("another engine holds the lease after the outage")
                self._take(got.token, consumer)
            self.renewed = time.monotonic()
            await consumer.commit(self._now())
            return market_last
        if marker is not None:
            raise LostLease(f"Redis now holds another state (marker {marker}, this engine "
                            f"knew {self.marker})")
        if not held:
            self.say(f"Redis came back empty, but this engine's lease may have run out before "
                     f"(renewed {since:.1f} s before the outage was seen, lease "
                     f"{self.opts.lease_ms / 1000:g} s): its state may be older than a "
                     "successor's, so it does not write it back")
            raise LostLease("the state is gone and this engine's lease had expired")
        before = time.monotonic()
        epoch = new_epoch()
        outcome, detail = await with_reconnect(
            lambda: store.rewrite(col, self.marker, self.owner, self.opts.lease_ms, epoch,
                                  col.engine.seen()), say=self.say)
        if outcome == "taken" and detail == self.marker:
            # our own write, whose reply was lost to a connection error and was retried
            if await client.get(self.keys.fence_epoch) == epoch:
                outcome, detail = "ok", await client.get(self.keys.fence)
            else:
                outcome, detail = "held", await client.get(self.keys.lease) or "?"
        if outcome == "taken":
            raise LostLease(f"another engine wrote a state first (marker {detail})")
        pf = col.portfolio
        self.say(f"Redis came back empty: wrote this engine's state back ({len(col.records)} "
                 f"agents, {len(col.ledger)} decisions held in memory, {len(pf.positions)} open "
                 f"positions, cash {pf.cash:.2f}, state marker {self.marker})")
        await consumer.start()  # the consumer group is gone with the data
        if outcome != "ok":
            raise LostLease(f"{detail} holds the lease")
        self._take(Token(int(detail), epoch), consumer)
        self.renewed = before
        await consumer.send_orders(self._now())
        return "0-0"  # the market stream starts again too

    def _take(self, token: Token, consumer: ProposalConsumer) -> None:
        assert self.col is not None
        self.say(f"lease re-acquired (fencing token {token.counter}, epoch {token.epoch})")
        consumer.fence = token
        self.col.fence = token.counter

    @staticmethod
    def _unsent_after_restart(col: Collective) -> None:
        """Paper broker: a decision recorded as pending whose order the previous engine never
        confirmed was not traded (the paper broker lived in that process): say so."""
        for entry in col.ledger.values():
            if entry.status == PENDING and entry.decision.id not in col.pending:
                entry.status = REJECTED
                entry.order_status = OrderStatus.REJECTED
                entry.reason = "not sent: the engine stopped between recording and sending"
                col.dirty.decisions.add(entry.decision.id)
                if entry.decision.asset not in col.portfolio.positions:
                    col.engine.set_holding(entry.decision.asset, None)

    def _note_bad_state(self, store: Store, consumer: ProposalConsumer) -> None:
        """Warn once about each unreadable agent record (and leave a dead letter note)."""
        for name, (reason, raw) in store.bad_agents.items():
            if self._noted_bad.get(name) == raw:
                continue
            self._noted_bad[name] = raw
            self.say(f"warning: agent record {name!r} is unreadable ({reason}); skipped")
            consumer.note_dead(self.keys.agents, name, {"record": raw},
                               f"unreadable agent record: {reason}", time.time())

    async def _archive(self, store: Store, consumer: ProposalConsumer) -> None:
        """Move final decisions past the ledger retention to the archive file."""
        s = self.opts.settings
        old = await store.old_decisions(time.time() - s.ledger_retention, ARCHIVE_BATCH)
        if not old:
            return
        path = s.archive_path()
        try:
            await asyncio.to_thread(archive.append, path, old)
        except RaweError as exc:  # a full disk must not stop the trading: they stay in Redis
            if str(exc) != self._archive_error:
                self._archive_error = str(exc)
                self.say(f"warning: {exc}; the decisions stay in Redis, trying again")
            return
        self._archive_error = ""
        ids = [e.decision.id for e in old]
        await store.forget_decisions(consumer.fence, ids)
        assert self.col is not None
        for did in ids:
            self.col.ledger.pop(did, None)

    async def _lookup_agent(self, store: Store, name: str) -> bool:
        assert self.col is not None
        rec = await store.agent(name)
        if rec is None:
            return False
        self.col.add_agent(rec)
        return True

    async def _sync_agents(self, store: Store, consumer: ProposalConsumer) -> None:
        """Add agents registered since the last look."""
        assert self.col is not None
        known = self.col.records
        for name, rec in (await store.agents()).items():
            if name not in known:
                self.col.add_agent(rec)
        self._note_bad_state(store, consumer)

    async def _share_outcomes(self, store: Store) -> None:
        """Sharded: this shard's closed positions to the collective's tallies (exactly once,
        see Store.flush_outcomes), then every shard's outcomes back into its weights."""
        col = self.col
        assert col is not None
        await store.flush_outcomes(time.time(), self.opts.settings.ledger_retention)
        tally = await store.tallies()
        before = {n: (r.wins, r.losses, r.pnl) for n, r in col.records.items()}
        apply_tallies(col.records, tally)
        changed = [n for n, r in col.records.items() if before[n] != (r.wins, r.losses, r.pnl)]
        if changed:
            col.dirty.agents.update(changed)
            col._reweigh()  # the scheme's weights from the collective's outcomes

    async def _market_tail(self, client: Any) -> str:
        """Take the last prices from the recent market stream; return where to follow it.

        Only marks: exits and learning happen on bars that arrive from now on.
        """
        assert self.col is not None
        tolerance = self.opts.settings.clock_tolerance
        recent = await client.xrevrange(self.keys.market, count=2000)
        for _, fields in reversed(recent):
            try:
                item = codec.decode_market(fields, time.time(), tolerance)
            except CodecError:
                continue  # a mark only: a bad bar here is skipped, never applied
            if isinstance(item, Bar):
                self.col.portfolio.mark(item.symbol, item.close)
                self.col.broker.on_price(item.symbol, item.close, item.timestamp)
                self.state.now = max(self.state.now, item.timestamp)
                self.col.dirty.marks = True  # saved with the next write
        return recent[0][0] if recent else "0-0"

    async def _follow_market(self, bus: Bus, last_id: str, consumer: ProposalConsumer) -> str:
        assert self.col is not None
        tolerance = self.opts.settings.clock_tolerance
        entries = await bus.tail(self.keys.market, last_id, count=5000)
        bars: list[Bar] = []
        for entry_id, fields in entries:
            last_id = entry_id
            try:
                # Against the wall clock, not the engine's: a bar stamped far ahead must not
                # move the clock that decides whether a proposal has expired.
                item = codec.decode_market(fields, time.time(), tolerance)
            except CodecError as exc:
                consumer.note_dead(self.keys.market, entry_id, fields, str(exc), self._now())
                continue
            if isinstance(item, Bar):
                bars.append(item)
                self.col.on_bar(item)
                self.state.now = max(self.state.now, item.timestamp)
                self.state.tick += 1
        if bars and self.classifier is not None:
            self.col.set_regime(self.classifier.update(bars))
        return last_id

    def _hold_lines(self, held: bool = True) -> None:
        """Serving: log lines go out once per turn of the loop (what is held is flushed now),
        not one write(2) each. `held=False`: one by one again (Redis away, stopping)."""
        if hasattr(self.say, "flush"):
            self.say.held = held  # type: ignore[attr-defined]
            self.say.flush()  # type: ignore[attr-defined]

    def _release_lines(self) -> None:
        self._hold_lines(False)

    def _now(self) -> float:
        return max(time.time(), self.state.now)

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

    def _log_decision(self, entry: LedgerEntry) -> None:
        self.say(entry.line())
