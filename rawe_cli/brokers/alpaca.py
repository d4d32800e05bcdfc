"""Alpaca through alpaca-py: the collective's orders on an Alpaca (paper) account.

alpaca-py is imported lazily (slow to import). The trading API's REST logic lives here (it
blocks: `AlpacaBroker` is driven from worker threads by alpaca_streaming.py, which adds the
trade-update stream and keeps it all off the engine's loop); the market-data and news side
lives in feeds/alpaca.py. Every trading request takes a token from a rate-limit bucket
(ratelimit.py) first.

Orders
    One market order per collective order, client_order_id = the decision id (exits:
    ``<decision id>-x``). Equities go as ``day`` orders, crypto (a symbol with ``/``) as
    ``gtc``. Quantities: crypto and fractionable equities keep the collective's fractional
    size (cut to 9 decimals, Alpaca's limit); non-fractionable equities and every short sale
    of an equity are cut to whole shares (Alpaca does not sell fractional shares short). A
    crypto short is refused locally: Alpaca does not sell crypto short.

Failures
    * alpaca-py itself re-sends a request that answers 429 or 504, up to 3 times, waiting
      ``sdk_retry_wait`` seconds (3 by default; RAWE_ALPACA_SDK_RETRY_WAIT).
    * 5xx, a 429/504 left after the SDK's retries, timeouts and connection errors: this module
      backs off (``backoff`` seconds, doubling, capped) and re-sends the *same* request with
      the same client_order_id, at most ``attempts`` times in all.
    * Because a re-sent POST may follow one that Alpaca did execute, a 403 or 422 first asks
      ``get_order_by_client_id``: if the order exists it is that order (recovered, never a
      second one); otherwise the rejection is recorded on the decision and the engine goes on.
    * A submission never confirmed after all attempts stays pending; each poll looks it up by
      client_order_id and, if Alpaca has never heard of it, re-sends it (bounded).
    * 401 is the keys: a BrokerError (one line), the run stops.

Fees: Alpaca charges no commission on equities, so fills carry fee 0. Crypto fees are taken
in the traded asset and do not appear on the order object; they are not counted.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rawe_cli.brokers.base import keep_newest
from rawe_cli.brokers.ratelimit import TokenBucket
from rawe_cli.errors import BrokerError, RaweError
from rawe_cli.models import Order, OrderStatus, OrderUpdate, Side

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
TRADING_URL_ENV = "APCA_API_BASE_URL"
DATA_URL_ENV = "APCA_API_DATA_URL"
SDK_WAIT_ENV = "RAWE_ALPACA_SDK_RETRY_WAIT"
BACKOFF_ENV = "RAWE_ALPACA_BACKOFF"
RATE_ENV = "RAWE_ALPACA_RATE_LIMIT"
LIVE_HOST = "api.alpaca.markets"
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"

# Alpaca order statuses -> ours. Anything not listed is still working (SUBMITTED).
_FINAL = {
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.CANCELED,
    "done_for_day": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}


def is_crypto(symbol: str) -> bool:
    return "/" in symbol


@dataclass(frozen=True, slots=True)
class AlpacaConfig:
    key_id: str
    secret_key: str
    paper: bool = True
    trading_url: str | None = None  # None: Alpaca's paper (or live) endpoint
    data_url: str | None = None  # None: https://data.alpaca.markets
    sdk_retry_wait: float = 3.0  # alpaca-py's own wait between its 429/504 retries
    attempts: int = 4  # our sends of one request on 5xx / connection errors, in all
    backoff: float = 0.5  # first back-off, seconds; doubles, capped at backoff_cap
    backoff_cap: float = 4.0
    resubmits: int = 3  # re-sends of an unconfirmed order that Alpaca never saw
    clock_ttl: float = 15.0  # seconds the market clock is cached
    http_timeout: float = 10.0  # seconds per HTTP request (alpaca-py sets none)
    rate_limit: float = 200.0  # trading-API requests a minute (Alpaca's limit: about 200)

    @property
    def endpoint(self) -> str:
        return self.trading_url or (PAPER_URL if self.paper else LIVE_URL)


def _clean_url(url: str, name: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RaweError(f"{name}={url!r} is not an http(s) URL")
    for suffix in ("/v2", "/v1beta1", "/v1beta3"):  # alpaca-py adds the version itself
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RaweError(f"{name}={raw!r} is not a number") from None
    if value < 0 or math.isnan(value):
        raise RaweError(f"{name} must be >= 0")
    return value


def config_from_env(env: Mapping[str, str] | None = None, *, live: bool = False,
                    require_keys: bool = True, check_trading: bool = True) -> AlpacaConfig:
    """Alpaca settings from the environment (Alpaca's own variable names).

    Paper trading unless `live`; without `live`, a trading URL on Alpaca's live host is
    refused, and with `live`, one on the paper host is refused (a mix-up either way);
    `check_trading=False` (data only) skips that check.
    """
    env = os.environ if env is None else env
    key, secret = env.get(KEY_ENV, "").strip(), env.get(SECRET_ENV, "").strip()
    if require_keys and not (key and secret):
        missing = " and ".join(n for n, v in ((KEY_ENV, key), (SECRET_ENV, secret)) if not v)
        raise RaweError(f"Alpaca keys missing: set {missing} (paper keys: "
                        f"https://app.alpaca.markets, Paper Trading, API keys)")
    trading = env.get(TRADING_URL_ENV) or None
    data = env.get(DATA_URL_ENV) or None
    if trading:
        trading = _clean_url(trading, TRADING_URL_ENV)
    if trading and check_trading:
        host = urlsplit(trading).hostname or ""
        if host == LIVE_HOST and not live:
            raise RaweError(f"{TRADING_URL_ENV} points at Alpaca's live endpoint; paper "
                            f"trading is the default, pass --live to trade real money")
        if live and host.startswith("paper-api."):
            raise RaweError(f"--live was given but {TRADING_URL_ENV} points at the paper "
                            f"endpoint ({trading})")
    if data:
        data = _clean_url(data, DATA_URL_ENV)
    return AlpacaConfig(
        key_id=key,
        secret_key=secret,
        paper=not live,
        trading_url=trading,
        data_url=data,
        sdk_retry_wait=_env_float(env, SDK_WAIT_ENV, 3.0),
        backoff=_env_float(env, BACKOFF_ENV, 0.5),
        rate_limit=_positive(env, RATE_ENV, 200.0),
    )


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _env_float(env, name, default)
    if value <= 0:
        raise RaweError(f"{name} must be > 0")
    return value


# -- alpaca-py plumbing ----------------------------------------------------------------------


@contextlib.contextmanager
def quiet_import() -> Iterator[None]:
    """alpaca.trading imports websockets.legacy, which warns (DESIGN.md): keep it quiet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def tune(client: Any, cfg: AlpacaConfig) -> Any:
    """Give an alpaca-py client our retry wait and an HTTP timeout.

    The constructors take no retry settings, and RESTClient ignores a wait of 0, so the
    attribute is set directly (tests use 0). requests has no default timeout; a hung
    connection would block the engine, so every request gets `http_timeout`.
    """
    client._retry_wait = cfg.sdk_retry_wait
    session = client._session
    session.request = functools.partial(type(session).request, session,
                                        timeout=cfg.http_timeout)
    return client


def trading_client(cfg: AlpacaConfig, limiter: TokenBucket | None = None) -> Any:
    """alpaca-py's TradingClient, tuned; with `limiter`, every HTTP request it makes (alpaca-py's
    own 429 re-sends included) first takes a token from it."""
    with quiet_import():
        from alpaca.trading.client import TradingClient
    client = tune(TradingClient(cfg.key_id, cfg.secret_key, paper=cfg.paper,
                                url_override=cfg.trading_url), cfg)
    if limiter is not None:
        session = client._session
        send = session.request

        def limited(*args: Any, **kwargs: Any) -> Any:
            limiter.acquire()
            return send(*args, **kwargs)

        session.request = limited
    return client


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str  # "transient", "auth", "notfound", "rejected"
    status: int | None
    message: str

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status else self.message


def classify(exc: BaseException) -> Failure:
    """What an exception from alpaca-py means for us."""
    import requests
    from alpaca.common.exceptions import APIError

    if isinstance(exc, APIError):
        status = exc.status_code
        try:
            message = str(exc.message)
        except Exception:  # the body was not Alpaca's JSON (a proxy's page, say)
            message = (str(exc).strip().splitlines() or ["no message"])[0][:160]
        if status is None or status >= 500 or status == 429:
            return Failure("transient", status, message)
        if status == 401:
            return Failure("auth", status, message)
        if status == 404:
            return Failure("notfound", status, message)
        return Failure("rejected", status, message)
    if isinstance(exc, requests.exceptions.RequestException):
        text = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        return Failure("transient", None, f"{exc.__class__.__name__}: {text}")
    raise exc


def keys_rejected(where: str, failure: Failure, paper: bool = True) -> BrokerError:
    which = "the paper account's keys" if paper else "the live account's keys (not paper's)"
    return BrokerError(f"Alpaca rejected the API keys at {where} ({failure}); check "
                       f"{KEY_ENV}/{SECRET_ENV}: {which}")


def _f(x: Any) -> float:
    try:
        return float(x) if x not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def _val(x: Any) -> str:
    return str(getattr(x, "value", x))


def to_update(order: Any) -> OrderUpdate:
    """An alpaca-py Order as an OrderUpdate (cumulative filled qty and average price)."""
    raw = _val(order.status)
    filled = _f(order.filled_qty)
    status = _FINAL.get(raw)
    if status is None:
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
    reason = "" if status in (OrderStatus.FILLED, OrderStatus.SUBMITTED,
                              OrderStatus.PARTIALLY_FILLED) else f"alpaca: {raw}"
    return OrderUpdate(
        client_order_id=order.client_order_id,
        status=status,
        filled_qty=filled,
        avg_price=_f(order.filled_avg_price),
        fee=0.0,
        reason=reason,
        broker_order_id=str(order.id),
    )


# -- the broker ------------------------------------------------------------------------------


@dataclass(slots=True)
class BrokerStats:
    submitted: int = 0  # orders Alpaca accepted
    retries: int = 0  # our re-sends after a transient failure
    recovered: int = 0  # 403/422 answers that turned out to be our own earlier order
    rejected: int = 0
    unconfirmed: int = 0
    resubmitted: int = 0
    order_reads: int = 0  # REST reads of one order (polls, look-ups, catch-ups)
    stream_updates: int = 0  # trade updates taken from the stream (new to the ledger)
    stream_drops: int = 0  # times the trade-update stream went down
    limiter: TokenBucket | None = field(default=None, repr=False)  # counts the waits

    @property
    def throttled(self) -> int:
        """Requests that waited for the rate limit."""
        return self.limiter.waits if self.limiter is not None else 0

    def to_dict(self) -> dict[str, int]:
        return {"submitted": self.submitted, "retries": self.retries,
                "recovered": self.recovered, "rejected": self.rejected,
                "unconfirmed": self.unconfirmed, "resubmitted": self.resubmitted,
                "order_reads": self.order_reads, "stream_updates": self.stream_updates,
                "stream_drops": self.stream_drops, "throttled": self.throttled}


class AlpacaBroker:
    name = "alpaca"

    def __init__(self, cfg: AlpacaConfig, *, client: Any = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.limiter = TokenBucket(cfg.rate_limit, say=say, what="Alpaca trading API")
        self.client = client if client is not None else trading_client(cfg, self.limiter)
        self._lock = threading.RLock()  # _remember: the stream's and the workers' threads
        self._sleep = sleep
        self._mono = monotonic
        self.prices: dict[str, float] = {}
        self.stats = BrokerStats(limiter=self.limiter)
        self.account: dict[str, Any] = {}
        self._clock: tuple[float, bool, float] | None = None  # fetched, is_open, next_open
        self._fractionable: dict[str, bool] = {}
        self._sent: dict[str, Any] = {}  # client_order_id -> the request, for re-sends
        self._unconfirmed: dict[str, int] = {}  # client_order_id -> re-sends so far
        self._last: dict[str, OrderUpdate] = {}

    # -- account ----------------------------------------------------------------------------

    def check_account(self) -> dict[str, Any]:
        """Read the account: raises BrokerError (one line) on bad keys or a blocked account."""
        try:
            acct = self.client.get_account()
        except Exception as exc:
            failure = classify(exc)
            if failure.kind in ("auth", "rejected", "notfound"):
                raise keys_rejected(self.cfg.endpoint, failure, self.cfg.paper) from None
            raise BrokerError(f"cannot reach Alpaca at {self.cfg.endpoint}: {failure}"
                              ) from None
        status = _val(acct.status)
        self.account = {
            "account_number": acct.account_number,
            "status": status,
            "equity": _f(acct.equity),
            "buying_power": _f(acct.buying_power),
            "paper": self.cfg.paper,
            "endpoint": self.cfg.endpoint,
        }
        if status != "ACTIVE":
            raise BrokerError(f"Alpaca account {acct.account_number} is {status}, not ACTIVE")
        if acct.trading_blocked or acct.account_blocked:
            raise BrokerError(f"Alpaca account {acct.account_number}: trading is blocked")
        return self.account

    # -- Broker protocol --------------------------------------------------------------------

    def on_price(self, symbol: str, price: float, timestamp: float) -> None:
        self.prices[symbol] = price

    def can_trade(self, symbol: str, timestamp: float) -> str:
        """Crypto trades at any hour; equities only while Alpaca's clock says open."""
        if is_crypto(symbol):
            return ""
        now = self._mono()
        if self._clock is None or now - self._clock[0] >= self.cfg.clock_ttl:
            try:
                clock = self.client.get_clock()
            except Exception as exc:
                failure = classify(exc)
                if failure.kind == "auth":
                    raise keys_rejected(self.cfg.endpoint, failure, self.cfg.paper) from None
                return f"market clock unavailable ({failure})"
            self._clock = (now, bool(clock.is_open), clock.next_open.timestamp())
        if self._clock[1]:
            return ""
        opens = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self._clock[2]))
        return f"market closed (opens {opens})"

    def submit(self, order: Order) -> OrderUpdate:
        coid = order.client_order_id
        known = self._last.get(coid)
        if known is not None:
            if known.status.final:  # an id Alpaca has finished with: never a second order
                return OrderUpdate(coid, OrderStatus.REJECTED, reason=(
                    f"client_order_id {coid} was already used by a {known.status.value} "
                    f"order"))
            return self.poll(coid)
        if is_crypto(order.asset) and order.purpose == "open" and order.side is Side.SELL:
            return self._reject(coid, "Alpaca does not sell crypto short")
        qty = self._quantity(order)
        if qty <= 0:
            return self._reject(coid, f"quantity {order.qty:g} rounds to 0 "
                                      f"(whole shares only for this order)")
        with quiet_import():
            from alpaca.trading.enums import OrderSide, TimeInForce
            from alpaca.trading.requests import MarketOrderRequest
        request = MarketOrderRequest(
            symbol=order.asset,
            qty=qty,
            side=OrderSide.BUY if order.side is Side.BUY else OrderSide.SELL,
            time_in_force=TimeInForce.GTC if is_crypto(order.asset) else TimeInForce.DAY,
            client_order_id=coid,
        )
        self._sent[coid] = request
        return self._send(coid, request)

    def poll(self, client_order_id: str) -> OrderUpdate:
        coid = client_order_id
        last = self._last.get(coid)
        if last is not None and last.status.final:
            return last
        try:
            self.stats.order_reads += 1
            return self._remember(to_update(self.client.get_order_by_client_id(coid)))
        except Exception as exc:
            failure = classify(exc)
        if failure.kind == "auth":
            raise keys_rejected(self.cfg.endpoint, failure, self.cfg.paper)
        if failure.kind == "notfound":
            if coid in self._unconfirmed and coid in self._sent:
                if self._unconfirmed[coid] < self.cfg.resubmits:
                    self._unconfirmed[coid] += 1
                    self.stats.resubmitted += 1
                    return self._send(coid, self._sent[coid])
                return self._reject(coid, f"never reached Alpaca after "
                                          f"{self.cfg.resubmits + 1} submissions")
            if last is None:
                return self._reject(coid, "Alpaca knows no such order")
        # transient (or a confirmed order briefly not found): still under way
        return last or OrderUpdate(coid, OrderStatus.SUBMITTED, reason=str(failure))

    # -- internals --------------------------------------------------------------------------

    def _remember(self, update: OrderUpdate) -> OrderUpdate:
        with self._lock:
            self._last[update.client_order_id] = update
            self._unconfirmed.pop(update.client_order_id, None)
            if update.status.final:  # nothing left to re-send
                self._sent.pop(update.client_order_id, None)
            keep_newest(self._last)
        return update

    def unconfirmed(self, coid: str) -> bool:
        """A submission never confirmed: only a REST look-up can tell what became of it."""
        return coid in self._unconfirmed

    def _reject(self, coid: str, reason: str) -> OrderUpdate:
        self.stats.rejected += 1
        return self._remember(OrderUpdate(coid, OrderStatus.REJECTED, reason=reason))

    def _wait(self, attempt: int) -> None:
        delay = min(self.cfg.backoff_cap, self.cfg.backoff * 2 ** (attempt - 1))
        if delay > 0:
            self._sleep(delay)

    def lookup(self, coid: str) -> Any | None:
        """The Alpaca order with this client_order_id, None if there is none.

        Raises the Failure's exception class only for auth; a transient failure returns
        the Failure itself so the caller can decide.
        """
        try:
            self.stats.order_reads += 1
            return self.client.get_order_by_client_id(coid)
        except Exception as exc:
            failure = classify(exc)
            if failure.kind == "notfound":
                return None
            if failure.kind == "auth":
                raise keys_rejected(self.cfg.endpoint, failure, self.cfg.paper) from None
            return failure

    def _send(self, coid: str, request: Any) -> OrderUpdate:
        last_failure: Failure | None = None
        for attempt in range(max(1, self.cfg.attempts)):
            if attempt:
                self.stats.retries += 1
                self._wait(attempt)
            try:
                placed = self.client.submit_order(request)
            except Exception as exc:
                failure = classify(exc)
            else:
                self.stats.submitted += 1
                return self._remember(to_update(placed))
            if failure.kind == "auth":
                raise keys_rejected(self.cfg.endpoint, failure, self.cfg.paper)
            if failure.kind == "transient":
                last_failure = failure
                continue
            # 403 / 422 / other 4xx: our own earlier send (a duplicate), or a real refusal?
            found = self.lookup(coid)
            if isinstance(found, Failure):
                last_failure = found
                continue
            if found is not None:
                self.stats.recovered += 1
                return self._remember(to_update(found))
            return self._reject(coid, f"alpaca refused the order ({failure})")
        self.stats.unconfirmed += 1
        self._unconfirmed.setdefault(coid, 0)
        return OrderUpdate(coid, OrderStatus.SUBMITTED, reason=(
            f"not confirmed after {self.cfg.attempts} attempts ({last_failure}); "
            f"looked up by client_order_id at the next poll"))

    def _quantity(self, order: Order) -> float:
        qty = order.qty
        if is_crypto(order.asset):
            return math.floor(qty * 1e9 + 1e-6) / 1e9
        short_sale = order.purpose == "open" and order.side is Side.SELL
        if short_sale or not self._is_fractionable(order.asset):
            return float(math.floor(qty + 1e-9))
        if order.purpose == "close":
            return round(qty, 9)
        return math.floor(qty * 1e9 + 1e-6) / 1e9

    def _is_fractionable(self, symbol: str) -> bool:
        known = self._fractionable.get(symbol)
        if known is not None:
            return known
        try:
            asset = self.client.get_asset(symbol)
        except Exception as exc:
            if classify(exc).kind == "auth":
                raise keys_rejected(self.cfg.endpoint, classify(exc), self.cfg.paper) from None
            return False  # unknown: whole shares are always accepted; ask again next time
        self._fractionable[symbol] = bool(asset.fractionable)
        return self._fractionable[symbol]

    # -- reconciliation ---------------------------------------------------------------------

    def reconcile(self, col: Any, now: float) -> ReconcileReport:
        from rawe_cli.brokers.reconcile import reconcile

        return reconcile(col, self, now)


@dataclass(slots=True)
class ReconcileReport:
    """What a start-up reconciliation with Alpaca found and did."""

    resumed: list[str] = field(default_factory=list)  # pending orders found, fills applied
    not_found: list[str] = field(default_factory=list)  # pending orders Alpaca never saw
    exits: list[str] = field(default_factory=list)  # closing orders found and applied
    matched: list[str] = field(default_factory=list)  # positions equal on both sides
    differ: list[str] = field(default_factory=list)  # positions held on both, qty differs
    unknown_positions: list[str] = field(default_factory=list)  # at Alpaca only: not adopted
    missing_positions: list[str] = field(default_factory=list)  # in the ledger only
    unknown_orders: list[str] = field(default_factory=list)  # open at Alpaca, not ours
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name)) for name in self.__slots__}  # type: ignore[attr-defined]

    def lines(self) -> list[str]:
        out = [
            f"reconciled with Alpaca: {len(self.resumed)} pending order(s) resumed, "
            f"{len(self.not_found)} not found, {len(self.exits)} exit(s) resumed; positions "
            f"{len(self.matched)} match, {len(self.differ)} differ, "
            f"{len(self.unknown_positions)} only at Alpaca, {len(self.missing_positions)} "
            f"only in the ledger; {len(self.unknown_orders)} open order(s) not the "
            f"collective's"
        ]
        labels = (("resumed", "resumed"), ("not_found", "not found at Alpaca"),
                  ("exits", "exit resumed"), ("differ", "position differs"),
                  ("unknown_positions", "at Alpaca only, not adopted"),
                  ("missing_positions", "in the ledger only"),
                  ("unknown_orders", "open order not the collective's"),
                  ("errors", "error"))
        for name, label in labels:
            for item in getattr(self, name):
                out.append(f"  {label}: {item}")
        return out
