"""The Alpaca broker off the engine loop: orders go to workers, fills come back by stream.

`StreamingAlpacaBroker` wraps `AlpacaBroker` (the REST logic: retries, duplicates, quantities)
so that the engine never waits for Alpaca:

* **Hand-off.** `submit` puts the order on the broker's own asyncio loop (thread
  ``alpaca-io``) and returns at once (the order is ``submitted``); the REST call runs there in
  a bounded pool of worker threads (`workers`, 4), so one slow call holds up only its own
  order. What becomes of an order comes back as `OrderUpdate` events on a queue that the
  engine empties with `updates(open_orders)`, applying them on its own loop
  (Collective.poll_orders): the collective stays single-threaded and synchronous.
* **Trade updates by stream.** alpaca-py's TradingStream (trade_updates) runs on the same
  loop and turns fills, partial fills, cancels and rejections into events. Normally an order
  costs its POST and no REST read at all.
* **Fallback.** While the stream is down (never connected, dropped, refused) that is said in
  one line and every order under way is read by REST, at once and then with back-off
  (`poll_first`, doubling up to `poll_cap`), until alpaca-py has reconnected.
* **Catch-up.** Each time the stream (re)connects, every order the ledger still has under way
  is read once by REST: what filled while nobody listened is applied. A submission that
  started before the stream listened, or that never got a confirmation, is read once after
  its answer. Events are merged (trade_updates.UpdateMerge) so a fill counts once.
* **Market clock** (equities): read in the background every `clock_ttl`; `can_trade`
  answers from the last reading.
* **Rate limit**: every trading-API request takes a token from the AlpacaBroker's bucket
  (brokers/ratelimit.py) in the thread that sends it, never the engine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rawe_cli.brokers.alpaca import (
    AlpacaBroker,
    classify,
    is_crypto,
    keys_rejected,
    quiet_import,
)
from rawe_cli.brokers.alpaca_urls import trading_stream_url
from rawe_cli.brokers.trade_updates import UpdateMerge, from_trade_update, make_stream
from rawe_cli.errors import BrokerError, RaweError
from rawe_cli.models import Order, OrderStatus, OrderUpdate

Say = Callable[[str], None]
DEFAULT = object()


class StreamingAlpacaBroker:
    name = "alpaca"

    def __init__(self, inner: AlpacaBroker, *, say: Say | None = None, workers: int = 4,
                 stream_url: Any = DEFAULT, poll_first: float = 0.5, poll_cap: float = 10.0,
                 connect_wait: float = 5.0) -> None:
        self.inner = inner
        self.cfg = inner.cfg
        self.say: Say = say or (lambda _line: None)
        self.stream_url: str | None = (trading_stream_url(inner.cfg.trading_url)
                                       if stream_url is DEFAULT else stream_url)
        self.workers = max(1, workers)
        self.poll_first, self.poll_cap = poll_first, poll_cap
        self.connect_wait = connect_wait
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._events: queue.SimpleQueue[OrderUpdate] = queue.SimpleQueue()
        self._merge = UpdateMerge()
        self._open: set[str] = set()  # the ledger's orders under way (told by the engine)
        self._inflight: set[str] = set()  # submissions not answered yet
        self._rest: set[str] = set()  # to read by REST even while the stream is up
        self._fatal: BaseException | None = None
        self.up = False  # the stream is authorized and listening
        self.epoch = 0  # connections so far
        self._down_since: float | None = None
        self._said_down = False
        self._reason = "not connected yet"
        self._clock: tuple[float, bool, float] | None = None  # read at (monotonic), open, opens
        self._clock_error = ""
        self._clock_busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="alpaca-rest")
        self.stream: Any = None

    # -- what the rest of RAWE reads ----------------------------------------------------------

    @property
    def stats(self) -> Any:
        return self.inner.stats

    @property
    def account(self) -> dict[str, Any]:
        return self.inner.account

    @property
    def busy(self) -> bool:
        """Submissions not answered yet."""
        return bool(self._inflight)

    def check_account(self) -> dict[str, Any]:
        return self.inner.check_account()

    def reconcile(self, col: Any, now: float) -> Any:
        """Start-up reconciliation (blocking REST: run it off the engine loop)."""
        return self.inner.reconcile(col, now)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> StreamingAlpacaBroker:
        """Start the loop and the stream; read the clock; wait up to `connect_wait` seconds for
        the stream, then say how orders are followed."""
        with quiet_import():  # here, not in the loop's thread: catch_warnings is global state
            import alpaca.trading.stream  # noqa: F401
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="alpaca-io",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        self._read_clock()
        deadline = time.monotonic() + self.connect_wait
        while not self.up and time.monotonic() < deadline and self._fatal is None:
            time.sleep(0.01)
        where = self.stream_url or ("Alpaca's paper stream" if self.cfg.paper
                                    else "Alpaca's live stream")
        with self._lock:
            if self.up:
                self.say(f"alpaca: trade updates by stream ({where})")
            else:
                self._said_down = True
                self.say(f"alpaca: trade-update stream {where} not connected ({self._reason}); "
                         f"orders are followed by REST polling with back-off until it is")
        return self

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every submission has its answer (at most `timeout` s); True if so."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._inflight:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def catch_up(self, open_orders: Iterable[str], timeout: float = 30.0) -> int:
        """Read every order in `open_orders` once by REST now (blocking: not on the engine's
        loop), e.g. before the last save; the answers come with the next `updates`. Returns
        how many were read."""
        loop = self._loop
        if loop is None:
            return 0
        with self._lock:
            targets = set(open_orders) - self._inflight
        if targets:
            asyncio.run_coroutine_threadsafe(self._catch_up(targets, None), loop
                                             ).result(timeout)
        return len(targets)

    def close(self, timeout: float = 10.0) -> None:
        """Let the submissions under way finish (at most `timeout` s), stop the stream."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self.settle(timeout)
        if self._stopping is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
        thread.join(timeout=5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._loop = self._thread = None

    def _main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._stopping, self._wake = asyncio.Event(), asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        assert self._stopping is not None
        stream = self.stream = make_stream(
            self.cfg.key_id, self.cfg.secret_key, paper=self.cfg.paper, url=self.stream_url,
            on_update=self._on_trade_update, on_up=self._on_up, on_down=self._on_down)
        running = [asyncio.create_task(stream._run_forever()),
                   asyncio.create_task(self._poller())]
        await self._stopping.wait()
        with contextlib.suppress(Exception):
            await stream.stop_ws()
            await stream.close()
        running[1].cancel()
        await asyncio.wait(running, timeout=2.0)
        for task in (*running, *self._tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in a worker thread (awaitable)."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc if isinstance(exc, RaweError) else BrokerError(
                f"alpaca: {exc.__class__.__name__}: {exc}")

    # -- the Broker protocol (engine thread) ------------------------------------------------

    def on_price(self, symbol: str, price: float, timestamp: float) -> None:
        self.inner.on_price(symbol, price, timestamp)

    def can_trade(self, symbol: str, timestamp: float) -> str:
        """Crypto trades at any hour; equities while the last reading of Alpaca's clock said
        open. A reading older than `clock_ttl` (or past the next open) is renewed in the
        background; until then the last one answers."""
        if is_crypto(symbol):
            return ""
        clock = self._clock
        stale = clock is None or (time.monotonic() - clock[0] >= self.cfg.clock_ttl
                                  or (not clock[1] and time.time() >= clock[2]))
        if stale and not self._clock_busy and self._loop is not None:
            self._clock_busy = True
            self._loop.call_soon_threadsafe(self._spawn, self._renew_clock())
        if clock is None:
            return f"market clock unavailable ({self._clock_error or 'not read yet'})"
        if clock[1]:
            return ""
        opens = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(clock[2]))
        return f"market closed (opens {opens})"

    def submit(self, order: Order) -> OrderUpdate:
        """Hand the order to a worker; it is ``submitted`` until its events say more."""
        if self._fatal is not None:
            raise self._fatal
        coid = order.client_order_id
        loop = self._loop
        if loop is None:
            raise BrokerError("the Alpaca broker is not running")
        with self._lock:
            self._inflight.add(coid)
        loop.call_soon_threadsafe(self._spawn, self._submit(order))
        return OrderUpdate(coid, OrderStatus.SUBMITTED)

    def poll(self, client_order_id: str) -> OrderUpdate:
        """The latest state known (no REST call: see `updates`)."""
        with self._lock:
            known = self._merge.known(client_order_id)
        return known or OrderUpdate(client_order_id, OrderStatus.SUBMITTED)

    def updates(self, open_orders: Iterable[str]) -> list[OrderUpdate]:
        """The events since the last call, oldest first; `open_orders`: the orders the ledger
        has under way (sent, not final), which a catch-up or a fallback poll reads."""
        if self._fatal is not None:
            raise self._fatal
        with self._lock:
            self._open = set(open_orders)
            self._rest &= self._open | self._inflight
        out: list[OrderUpdate] = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self._events.get_nowait())
        return out

    # -- events (loop thread, or a worker under the lock) -----------------------------------

    def _offer(self, update: OrderUpdate, execution_id: str | None = None,
               streamed: bool = False) -> None:
        with self._lock:
            passed = self._merge.offer(update, execution_id)
            if passed is None:
                return
            if streamed:
                self.inner.stats.stream_updates += 1
            if passed.status.final:
                self._rest.discard(passed.client_order_id)
            self._events.put(passed)

    async def _on_trade_update(self, message: Any) -> None:
        try:
            execution, update = from_trade_update(message)
        except Exception:  # an update we cannot read: the next REST read tells
            return
        self._offer(update, execution, streamed=True)

    def _on_up(self) -> None:
        with self._lock:
            self.up = True
            self.epoch += 1
            down_since, said = self._down_since, self._said_down
            self._down_since, self._said_down = None, False
            targets = (self._open | self._rest) - self._inflight
        self._spawn(self._catch_up(targets, down_since if said else None))

    def _on_down(self, reason: str) -> None:
        if self._stopping is None or self._stopping.is_set():
            return
        with self._lock:
            self._reason = reason
            if self._down_since is None:
                self._down_since = time.monotonic()
            if not self.up:
                return  # another failed attempt while down: said already (or at start)
            self.up = False
            self.inner.stats.stream_drops += 1
            self._said_down = True
            n = len(self._open | self._inflight)
        self.say(f"alpaca: trade-update stream down ({reason}); following {n} open order(s) "
                 f"by REST polling with back-off until it reconnects")
        if self._wake is not None:
            self._wake.set()

    async def _catch_up(self, targets: set[str], down_since: float | None) -> None:
        results = await asyncio.gather(*(self._read(coid) for coid in sorted(targets)))
        with self._lock:
            for coid, ok in zip(sorted(targets), results, strict=True):
                if ok and not self.inner.unconfirmed(coid):
                    self._rest.discard(coid)
        if down_since is not None:
            self.say(f"alpaca: trade-update stream connected after "
                     f"{time.monotonic() - down_since:.1f} s; caught up {len(targets)} open "
                     f"order(s) by REST")

    async def _read(self, coid: str) -> bool:
        """One REST read of an order, its news offered; False if it failed."""
        try:
            update = await self._call(self.inner.poll, coid)
        except Exception as exc:
            self._fail(exc)
            return False
        self._offer(update)
        return True

    async def _submit(self, order: Order) -> None:
        coid = order.client_order_id
        epoch = self.epoch if self.up else -1
        update: OrderUpdate | None = None
        try:
            update = await self._call(self.inner.submit, order)
        except Exception as exc:
            self._fail(exc)
        with self._lock:
            if update is not None:
                self._offer(update)
                missed = epoch < 0 or epoch != self.epoch or not self.up
                if not update.status.final and (missed or self.inner.unconfirmed(coid)):
                    self._rest.add(coid)  # the stream may not have heard of it: read it once
            self._inflight.discard(coid)
            if not self._inflight:
                self._idle.notify_all()
            follow = coid in self._rest
        if follow and self._wake is not None:
            self._wake.set()

    async def _poller(self) -> None:
        """REST reads: every order under way while the stream is down (with back-off), and the
        few that need one while it is up."""
        assert self._wake is not None
        delay = self.poll_first
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            with self._lock:
                up = self.up
                targets = (self._rest if up else self._open | self._rest) - self._inflight
            if not targets:
                delay = self.poll_first
                continue
            results = await asyncio.gather(*(self._read(coid) for coid in sorted(targets)))
            with self._lock:
                for coid, ok in zip(sorted(targets), results, strict=True):
                    if ok and self.up and not self.inner.unconfirmed(coid):
                        self._rest.discard(coid)
                again = bool(self._rest) or not self.up
            delay = min(self.poll_cap, delay * 2) if again else self.poll_first

    # -- market clock -------------------------------------------------------------------------

    def _read_clock(self) -> None:
        try:
            clock = self.inner.client.get_clock()
        except Exception as exc:
            failure = classify(exc)
            if failure.kind == "auth":
                self._fail(keys_rejected(self.cfg.endpoint, failure, self.cfg.paper))
            self._clock_error = str(failure)
            return
        finally:
            self._clock_busy = False
        self._clock_error = ""
        self._clock = (time.monotonic(), bool(clock.is_open), clock.next_open.timestamp())

    async def _renew_clock(self) -> None:
        try:
            await self._call(self._read_clock)
        except Exception as exc:
            self._clock_busy = False
            self._fail(exc)
