"""A small fake Alpaca (trading + market data + news) for tests, on 127.0.0.1.

It speaks the HTTP paths alpaca-py 0.44 calls, with bodies that satisfy alpaca-py's strict
pydantic models (UUID ids, numbers as strings where Alpaca sends strings), so the tests drive
the real SDK clients through `url_override`. Nothing here reaches the internet.

Knobs a test turns:

* ``fail_next(method, path, *statuses, apply=False)``: the next requests on that path answer
  those statuses. With ``apply=True`` an order POST is *executed* before the error is sent
  (a gateway timeout after the order was created), the case that makes a retry a duplicate.
* ``fill_plan``: cumulative filled fractions of each new order, the first at creation and one
  more at each later read of the order; ending below 1.0 ends in ``end_status`` (canceled).
* ``hold`` / ``release()``: new orders stay unfilled until released (a crash mid-order).
* ``prices``: the market; fills and the data endpoints use it. ``market_open``: the clock.
* ``buying_power``: a buy worth more answers 403 "insufficient buying power".
* ``news``: articles served by /v1beta1/news.
* history (bars requests with ``start``): bars every ``timeframe`` from start to end, stocks
  on weekdays 13:00-21:30 UTC (so also outside NYSE sessions, and on holidays), crypto at
  every hour; ``page_size`` items a page (across symbols, then ``next_page_token``), news
  likewise; ``no_data``: symbols with no bars at all (an unknown ticker).
* ``stall_next(method, path, seconds, symbol=None)``: the next such request (an order POST
  for `symbol`) is answered only after `seconds`, or at ``unstall()``.

The trade-update stream, ``ws://<same host and port>/stream`` (what RAWE derives from
APCA_API_BASE_URL), speaks the protocol alpaca-py's TradingStream speaks (JSON frames:
authenticate, listen, then ``{"stream": "trade_updates", "data": ...}``). Every change of an
order is pushed to the connected clients: ``new``, ``partial_fill``/``fill`` (with a fresh
execution id), ``canceled``, ``rejected``. Knobs:

* ``fill_every``: seconds; orders then fill by themselves along ``fill_plan``, one step each
  `fill_every` (like Alpaca: REST reads no longer move them).
* ``stream_drop()``: close the stream connections (the client reconnects by itself);
  ``stream_refuse``: new stream connections are answered 503 while True.
* ``reject(coid)``: Alpaca rejects a working order (a ``rejected`` event).
* ``replay_last_event()``: send the last trade update again (same execution id).
* ``order_reads(coid)``: REST reads of that order so far.
* ``bar_history`` (``add_bar``): when set, the historical bars endpoints serve these minute
  bars, between the request's start and end, instead of made-up ones.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time as _wall
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


@dataclass
class _Fault:
    method: str
    path: str
    status: int
    apply: bool
    body: dict[str, Any] | None


class FakeAlpaca:
    def __init__(self, key: str = "test-key", secret: str = "test-secret",
                 now: Callable[[], float] | None = None) -> None:
        import time

        self.key, self.secret = key, secret
        self.now = now or time.time
        self.lock = threading.RLock()
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_coid: dict[str, str] = {}
        self._plan_of: dict[str, tuple[list[float], int]] = {}
        self.fill_plan: list[float] = [1.0]
        self.hold = False  # new orders stay "accepted" until release()
        self._held: set[str] = set()
        self.end_status = "canceled"
        self.prices: dict[str, float] = {}
        self.default_price = 100.0
        self.positions: dict[str, dict[str, float]] = {}  # symbol -> qty (signed), avg
        self.market_open = True
        self.buying_power = 1e12
        self.account_status = "ACTIVE"
        self.fractionable = True
        self.news: list[dict[str, Any]] = []
        self.bar_history: dict[str, list[dict[str, Any]]] | None = None
        self.faults: list[_Fault] = []
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        self.log_times: list[float] = []  # monotonic, one per `log` entry
        self.price_fn: Callable[[str], float] | None = None  # overrides `prices` when set
        self.on_data: Callable[[FakeAlpaca, str], None] | None = None
        self.page_size = 1000  # history: items a page, at most
        self.no_data: set[str] = set()  # history: symbols with no bars
        # the trade-update stream
        self.fill_every: float | None = None
        self.stream_refuse = False
        self.streams: list[Any] = []  # stream connections authorized and listening
        self.stream_connections = 0  # listening sessions so far
        self.stream_sent: list[dict[str, Any]] = []  # trade updates pushed (to anyone)
        self.stalls: list[tuple[str, str, float, str | None, threading.Event]] = []
        self._gates: list[threading.Event] = []
        self.stalled: list[tuple[str, str, float, float]] = []  # what waited: from, to
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._exchange = threading.Thread(target=self._exchange_loop, daemon=True)
        self._stopped = threading.Event()
        from websockets.sync.server import serve

        self._ws = serve(self._stream_session, sock=socket.socket(),
                         process_request=self._stream_gate, compression=None)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAlpaca:
        self._thread.start()
        self._exchange.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.unstall()
        self._server.shutdown()
        self._server.server_close()
        self.stream_drop(1001)

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment variables pointing the project at this server, with fast retries."""
        return {
            "APCA_API_KEY_ID": self.key,
            "APCA_API_SECRET_KEY": self.secret,
            "APCA_API_BASE_URL": self.url,
            "APCA_API_DATA_URL": self.url,
            "RAWE_ALPACA_SDK_RETRY_WAIT": "0",
            "RAWE_ALPACA_BACKOFF": "0",
        }

    # -- knobs --------------------------------------------------------------------------------

    def fail_next(self, method: str, path: str, *statuses: int, apply: bool = False,
                  body: dict[str, Any] | None = None) -> None:
        with self.lock:
            for status in statuses:
                self.faults.append(_Fault(method.upper(), path, status, apply, body))

    def price(self, symbol: str) -> float:
        if self.price_fn is not None:
            return self.price_fn(symbol)
        return self.prices.get(symbol, self.default_price)

    def requests(self, method: str, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for m, p, body in self.log if m == method and p == path]

    def order_posts(self) -> list[dict[str, Any]]:
        return self.requests("POST", "/v2/orders")

    def order_reads(self, coid: str) -> int:
        """REST reads of the order with this client_order_id (by that id or by Alpaca's)."""
        with self.lock:
            oid = self.by_coid.get(coid, "")
            return sum(1 for m, p, body in self.log if m == "GET" and (
                (p == "/v2/orders:by_client_order_id" and body.get("client_order_id") == coid)
                or (oid and p == f"/v2/orders/{oid}")))

    def stall_next(self, method: str, path: str, seconds: float,
                   symbol: str | None = None) -> None:
        with self.lock:
            gate = threading.Event()
            self._gates.append(gate)
            self.stalls.append((method.upper(), path, seconds, symbol, gate))

    def unstall(self) -> None:
        """Answer every stalled request now (and let no later stall wait)."""
        with self.lock:
            for *_, gate in self.stalls:
                gate.set()
            for gate in self._gates:
                gate.set()

    # -- the trade-update stream --------------------------------------------------------------

    def _stream_gate(self, conn: Any, request: Any) -> Any:
        if self.stream_refuse:
            return conn.respond(503, "stream unavailable\n")
        return None

    def _stream_session(self, conn: Any) -> None:
        auth = json.loads(conn.recv())
        data = auth.get("data") or {}
        ok = (auth.get("action") == "authenticate" and data.get("key_id") == self.key
              and data.get("secret_key") == self.secret)
        conn.send(json.dumps({"stream": "authorization", "data": {
            "action": "authenticate", "status": "authorized" if ok else "unauthorized"}}
        ).encode())
        if not ok:
            return
        listen = json.loads(conn.recv())
        streams = (listen.get("data") or {}).get("streams", [])
        listening = "trade_updates" in streams
        if listening:  # subscribed before it is confirmed, as a server does: an update made
            with self.lock:  # right after the client hears "listening" reaches it
                self.streams.append(conn)
                self.stream_connections += 1
        conn.send(json.dumps({"stream": "listening", "data": {"streams": streams}}).encode())
        if not listening:
            return
        try:
            for _ in conn:  # until the client goes (nothing else is expected from it)
                pass
        except Exception:
            pass
        finally:
            with self.lock:
                if conn in self.streams:
                    self.streams.remove(conn)

    def stream_drop(self, code: int = 1000) -> None:
        with self.lock:
            conns, self.streams = list(self.streams), []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close(code)

    def _push(self, data: dict[str, Any]) -> None:
        self.stream_sent.append(data)
        frame = json.dumps({"stream": "trade_updates", "data": data}).encode()
        for conn in list(self.streams):
            with contextlib.suppress(Exception):
                conn.send(frame)

    def _event(self, order: dict[str, Any], event: str, qty: float = 0.0,
               price: float | None = None) -> None:
        data: dict[str, Any] = {"event": event, "timestamp": iso(self.now()),
                                "order": dict(order)}
        if event in ("fill", "partial_fill"):
            data.update(execution_id=str(uuid.uuid4()), qty=_num(qty), price=_num(price or 0),
                        position_qty=_num(self.positions.get(
                            order["symbol"].replace("/", ""), {"qty": 0.0})["qty"]))
        self._push(data)

    def replay_last_event(self) -> None:
        with self.lock:
            self._push(dict(self.stream_sent[-1]))

    def reject(self, coid: str, reason: str = "rejected by the exchange") -> None:
        with self.lock:
            order = self.orders[self.by_coid[coid]]
            order["status"] = "rejected"
            order["failed_at"] = order["updated_at"] = iso(self.now())
            self._event(order, "rejected")

    def _exchange_loop(self) -> None:
        while not self._stopped.wait(self.fill_every or 0.05):
            if self.fill_every is None:
                continue
            with self.lock:
                for oid in list(self.orders):
                    self._advance(oid, by="exchange")

    def add_order(self, symbol: str, side: str, qty: float, coid: str,
                  plan: list[float] | None = None) -> dict[str, Any]:
        """An order placed behind the collective's back (or before a crash)."""
        with self.lock:
            return self._create({"symbol": symbol, "side": side, "qty": str(qty),
                                 "type": "market", "time_in_force": "day",
                                 "client_order_id": coid}, plan)

    def release(self, plan: list[float] | None = None, only: set[str] | None = None) -> None:
        """Let held orders (all, or those client_order_ids) move along `plan` from their
        next read (default [1.0]: filled at the next read)."""
        with self.lock:
            self.hold = False
            for oid, order in self.orders.items():
                if oid in self._held and (only is None or order["client_order_id"] in only):
                    self._held.discard(oid)
                    done = float(order["filled_qty"]) / float(order["qty"])
                    self._plan_of[oid] = ([done, *(plan or [1.0])], 0)

    # -- orders -------------------------------------------------------------------------------

    def _create(self, req: dict[str, Any], plan: list[float] | None = None) -> dict[str, Any]:
        now = iso(self.now())
        symbol = req["symbol"]
        crypto = "/" in symbol
        qty = float(req["qty"]) if req.get("qty") is not None else (
            float(req["notional"]) / self.price(symbol))
        oid = str(uuid.uuid4())
        order = {
            "id": oid,
            "client_order_id": req.get("client_order_id") or str(uuid.uuid4()),
            "created_at": now, "updated_at": now, "submitted_at": now,
            "filled_at": None, "expired_at": None, "canceled_at": None, "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "symbol": symbol,
            "asset_class": "crypto" if crypto else "us_equity",
            "notional": req.get("notional"),
            "qty": _num(qty),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "simple",
            "order_type": "market", "type": "market",
            "side": req["side"],
            "time_in_force": req["time_in_force"],
            "limit_price": None, "stop_price": None,
            "status": "accepted",
            "extended_hours": False,
            "legs": None,
        }
        self.orders[oid] = order
        self.by_coid[order["client_order_id"]] = oid
        self._plan_of[oid] = (list(plan if plan is not None else self.fill_plan), 0)
        if self.hold:
            self._held.add(oid)
        self._event(order, "new")
        if self.fill_every is None:
            self._advance(oid, first=True)
        else:  # the exchange fills it, from plan step 0 on
            self._plan_of[oid] = (self._plan_of[oid][0], -1)
        return dict(order)

    def _advance(self, oid: str, first: bool = False, by: str = "read") -> None:
        """Move the order one step along its fill plan (`by` a REST read, or by the exchange
        when `fill_every` is set: then reads do not move it)."""
        order = self.orders[oid]
        if order["status"] in ("filled", "canceled", "rejected", "expired"):
            return
        if oid in self._held:
            return
        if by == "read" and self.fill_every is not None and not first:
            return
        plan, step = self._plan_of[oid]
        if not first:
            step += 1
        if "/" not in order["symbol"] and not self.market_open:
            return  # equities do not fill while the market is closed
        if step >= len(plan):
            order["status"] = self.end_status
            order["canceled_at"] = order["updated_at"] = iso(self.now())
            self._event(order, self.end_status)
            return
        self._plan_of[oid] = (plan, step)
        target = plan[step] * float(order["qty"])
        done = float(order["filled_qty"])
        delta = target - done
        if delta > 1e-12:
            price = self.price(order["symbol"])
            avg = float(order["filled_avg_price"] or 0.0)
            new_avg = (avg * done + price * delta) / target
            order["filled_qty"] = _num(target)
            order["filled_avg_price"] = _num(round(new_avg, 6))
            self._book(order["symbol"], delta if order["side"] == "buy" else -delta, price)
        order["updated_at"] = iso(self.now())
        if plan[step] >= 1.0:
            order["status"] = "filled"
            order["filled_at"] = iso(self.now())
        elif float(order["filled_qty"]) > 0:
            order["status"] = "partially_filled"
        if delta > 1e-12:
            self._event(order, "fill" if order["status"] == "filled" else "partial_fill",
                        delta, price)

    def _book(self, symbol: str, signed: float, price: float) -> None:
        key = symbol.replace("/", "")
        pos = self.positions.get(key, {"qty": 0.0, "avg": 0.0})
        qty = pos["qty"]
        new = qty + signed
        if abs(new) < 1e-9:
            self.positions.pop(key, None)
            return
        if qty == 0 or (qty > 0) != (new > 0):
            avg = price
        elif abs(new) > abs(qty):
            avg = (pos["avg"] * abs(qty) + price * abs(signed)) / abs(new)
        else:
            avg = pos["avg"]
        self.positions[key] = {"qty": new, "avg": avg, "symbol": symbol}

    def _position_json(self, key: str, pos: dict[str, Any]) -> dict[str, Any]:
        symbol = pos.get("symbol", key)
        crypto = "/" in symbol
        qty = pos["qty"]
        price = self.price(symbol)
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "symbol": key,
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "asset_class": "crypto" if crypto else "us_equity",
            "asset_marginable": not crypto,
            "avg_entry_price": _num(round(pos["avg"], 6)),
            "qty": _num(qty),
            "side": "long" if qty > 0 else "short",
            "market_value": _num(round(qty * price, 4)),
            "cost_basis": _num(round(qty * pos["avg"], 4)),
            "unrealized_pl": _num(round(qty * (price - pos["avg"]), 4)),
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
            "qty_available": _num(qty),
        }

    # -- requests -----------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes
               ) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        payload: dict[str, Any] = {}
        if body:
            payload = json.loads(body)
        with self.lock:
            stall = next((st for st in self.stalls if st[0] == method and st[1] == path
                          and (st[3] is None or st[3] == payload.get("symbol"))), None)
            if stall is not None:
                self.stalls.remove(stall)
        if stall is not None:  # outside the lock: the other requests go on meanwhile
            began = _wall.monotonic()
            stall[4].wait(stall[2])
            with self.lock:
                self.stalled.append((method, path, began, _wall.monotonic()))
        with self.lock:
            self.log.append((method, path, payload or dict(query)))
            self.log_times.append(_wall.monotonic())
            fault = next((f for f in self.faults if f.method == method and f.path == path),
                         None)
            if fault is not None:
                self.faults.remove(fault)
                if fault.apply and method == "POST" and path == "/v2/orders":
                    self._post_order(payload)
                return fault.status, fault.body or {"code": fault.status * 100000,
                                                    "message": f"scripted {fault.status}"}
            keyless_crypto = (path.startswith("/v1beta3/crypto")
                              and not headers.get("APCA-API-KEY-ID"))
            if not keyless_crypto and (headers.get("APCA-API-KEY-ID") != self.key
                                       or headers.get("APCA-API-SECRET-KEY") != self.secret):
                return 401, {"code": 40110000, "message": "request is not authorized"}
            return self._route(method, path, query, payload)

    def _post_order(self, req: dict[str, Any]) -> tuple[int, Any]:
        coid = req.get("client_order_id")
        if coid and coid in self.by_coid:
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        qty = req.get("qty")
        if qty is not None and float(qty) <= 0:
            return 422, {"code": 40010001, "message": "qty must be > 0"}
        if req.get("side") == "buy":
            price = self.price(req["symbol"])
            cost = float(qty) * price if qty is not None else float(req["notional"])
            if cost > self.buying_power:
                return 403, {"code": 40310000, "message": "insufficient buying power"}
        return 200, self._create(req)

    def _route(self, method: str, path: str, q: dict[str, str], body: dict[str, Any]
               ) -> tuple[int, Any]:
        if path == "/v2/account":
            return 200, self._account()
        if path == "/v2/clock":
            now = self.now()
            return 200, {"timestamp": iso(now), "is_open": self.market_open,
                         "next_open": iso(now + 3600), "next_close": iso(now + 7200)}
        if path == "/v2/orders" and method == "POST":
            return self._post_order(body)
        if path == "/v2/orders" and method == "GET":
            status = q.get("status", "open")
            out = []
            for oid, order in self.orders.items():
                is_open = order["status"] in ("accepted", "new", "partially_filled")
                if status == "all" or (status == "open") == is_open:
                    out.append(order)
                    if is_open:
                        self._advance(oid)
            return 200, out
        if path == "/v2/orders:by_client_order_id":
            oid = self.by_coid.get(q.get("client_order_id", ""))
            if oid is None:
                return 404, {"code": 40410000, "message": "order not found"}
            self._advance(oid)
            return 200, self.orders[oid]
        if path.startswith("/v2/orders/"):
            oid = path.rsplit("/", 1)[1]
            if oid not in self.orders:
                return 404, {"code": 40410000, "message": "order not found"}
            self._advance(oid)
            return 200, self.orders[oid]
        if path == "/v2/positions":
            return 200, [self._position_json(k, p) for k, p in sorted(self.positions.items())]
        if path.startswith("/v2/assets/"):
            symbol = path[len("/v2/assets/"):]
            return 200, self._asset(symbol)
        return self._data(path, q)

    def _account(self) -> dict[str, Any]:
        return {
            "id": "5b3b7a4e-2a4b-4f6c-9d0e-1f2a3b4c5d6e",
            "account_number": "PA3FAKE0001",
            "status": self.account_status,
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": _num(self.buying_power),
            "cash": "100000",
            "portfolio_value": "100000",
            "equity": "100000",
            "last_equity": "100000",
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-02T15:00:00Z",
            "trade_suspended_by_user": False,
            "multiplier": "2",
            "shorting_enabled": True,
            "daytrade_count": 0,
        }

    def _asset(self, symbol: str) -> dict[str, Any]:
        crypto = "/" in symbol
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "class": "crypto" if crypto else "us_equity",
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "symbol": symbol, "name": symbol, "status": "active", "tradable": True,
            "marginable": not crypto, "shortable": not crypto, "easy_to_borrow": not crypto,
            "fractionable": self.fractionable or crypto,
        }

    # -- market data --------------------------------------------------------------------------

    def _bar(self, symbol: str, ts: float) -> dict[str, Any]:
        p = self.price(symbol)
        return {"t": iso(ts), "o": p, "h": p * 1.001, "l": p * 0.999, "c": p, "v": 1200,
                "n": 17, "vw": p}

    def _trade(self, symbol: str, ts: float) -> dict[str, Any]:
        return {"t": iso(ts), "p": self.price(symbol), "s": 5, "x": "V", "i": 42,
                "c": ["@"], "z": "C"}

    def _data(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        now = self.now()
        symbols = [s for s in q.get("symbols", "").split(",") if s]
        latest = ("/v2/stocks/trades/latest", "/v1beta3/crypto/us/latest/trades",
                  "/v2/stocks/bars/latest", "/v1beta3/crypto/us/latest/bars")
        if path in latest and self.on_data is not None:
            self.on_data(self, path)
        if path in ("/v2/stocks/bars", "/v1beta3/crypto/us/bars") and self.bar_history is not None:
            lo, hi = _when(q.get("start"), 0.0), _when(q.get("end"), float("inf"))
            found = {s: [b for b in self.bar_history.get(s, []) if lo <= _when(b["t"], 0) <= hi]
                     for s in symbols}
            return 200, {"bars": {s: b for s, b in found.items() if b}, "next_page_token": None}
        if path in ("/v2/stocks/bars", "/v1beta3/crypto/us/bars") and q.get("start"):
            return 200, self._history(symbols, q, "nextbars")
        if path in ("/v2/stocks/bars", "/v1beta3/crypto/us/bars"):
            limit = int(q.get("limit") or 3)
            bars = {s: [self._bar(s, now - 60 * (limit - i)) for i in range(limit)]
                    for s in symbols}
            return 200, {"bars": bars, "next_page_token": None}
        if path in ("/v2/stocks/bars/latest", "/v1beta3/crypto/us/latest/bars"):
            return 200, {"bars": {s: self._bar(s, now - 30) for s in symbols}}
        if path in ("/v2/stocks/trades/latest", "/v1beta3/crypto/us/latest/trades"):
            return 200, {"trades": {s: self._trade(s, now - 1) for s in symbols}}
        if path == "/v1beta1/news":
            wanted = set(q.get("symbols", "").split(",")) - {""}
            start = q.get("start")
            start_ts = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() \
                if start else 0.0
            arts = [a for a in self.news
                    if (not wanted or wanted & set(a["symbols"]))
                    and datetime.fromisoformat(a["created_at"].replace("Z", "+00:00")
                                               ).timestamp() >= start_ts]
            if q.get("end"):
                end_ts = _epoch(q["end"])
                arts = [a for a in arts if _epoch(a["created_at"]) <= end_ts]
            arts.sort(key=lambda a: a["created_at"], reverse=(q.get("sort", "desc") == "desc"))
            offset = int(q.get("page_token") or 0)
            n = min(int(q.get("limit") or 50), self.page_size)
            more = offset + n < len(arts)
            return 200, {"news": arts[offset:offset + n],
                         "next_page_token": str(offset + n) if more else None}
        return 404, {"code": 40410000, "message": f"no route {path}"}

    def _history(self, symbols: list[str], q: dict[str, str], _: str) -> dict[str, Any]:
        """Bars from start to end (inclusive) every timeframe, one page of them."""
        start, end = _epoch(q["start"]), _epoch(q["end"]) if q.get("end") else self.now()
        step = _timeframe_seconds(q.get("timeframe", "1Min"))
        items: list[tuple[str, dict[str, Any]]] = []
        for s in sorted(symbols):
            if s in self.no_data:
                continue
            ts = start - start % step + (step if start % step else 0)
            while ts <= end:
                second = ts % 86_400
                weekday = int(ts // 86_400 + 3) % 7
                if "/" in s or (weekday < 5 and (step >= 86_400
                                                 or 13 * 3600 <= second < 21.5 * 3600)):
                    p = self.default_price * (1 + 0.03 * math.sin(ts / 5400 + len(s)))
                    items.append((s, {"t": iso(ts), "o": p, "h": p * 1.002, "l": p * 0.998,
                                      "c": p * 1.0005, "v": 1000, "n": 10, "vw": p}))
                ts += step
        offset = int(q.get("page_token") or 0)
        n = min(int(q.get("limit") or 10000), self.page_size)
        bars: dict[str, list[dict[str, Any]]] = {}
        for s, bar in items[offset:offset + n]:
            bars.setdefault(s, []).append(bar)
        more = offset + n < len(items)
        return {"bars": bars, "next_page_token": str(offset + n) if more else None}

    def add_bar(self, symbol: str, start: float, o: float, h: float, low: float, c: float,
                v: float = 100.0) -> None:
        """A minute bar in the history the bars endpoints serve (see ``bar_history``)."""
        with self.lock:
            if self.bar_history is None:
                self.bar_history = {}
            bars = self.bar_history.setdefault(symbol, [])
            bars.append({"t": iso(start), "o": o, "h": h, "l": low, "c": c, "v": v, "n": 3,
                         "vw": c})
            bars.sort(key=lambda b: b["t"])

    def add_news(self, id_: int, created_at: float, headline: str, symbols: list[str],
                 summary: str = "") -> None:
        with self.lock:
            self.news.append({
                "id": id_, "headline": headline, "summary": summary,
                "author": "Fake Wire", "source": "benzinga", "url": None,
                "created_at": iso(created_at), "updated_at": iso(created_at),
                "symbols": symbols, "content": "", "images": [],
            })


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _timeframe_seconds(text: str) -> int:
    units = {"Min": 60, "T": 60, "Hour": 3600, "H": 3600, "Day": 86_400, "D": 86_400}
    for unit, seconds in units.items():
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * seconds
    raise ValueError(f"timeframe {text!r}")


class _Server(ThreadingHTTPServer):
    """HTTP, and on the same port the trade-update stream: a connection whose request line is
    ``GET /stream`` goes to the websocket server."""

    daemon_threads = True

    def __init__(self, fake: FakeAlpaca) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _handler(fake))

    def finish_request(self, request: Any, client_address: Any) -> None:
        head = b""
        deadline = _wall.monotonic() + 5.0
        with contextlib.suppress(OSError):
            while len(head) < 12 and b"\r\n" not in head and _wall.monotonic() < deadline:
                head = request.recv(64, socket.MSG_PEEK)
                if not head:
                    return
                if len(head) < 12:
                    _wall.sleep(0.001)
        if head.startswith(b"GET /stream ") or head.startswith(b"GET /stream?"):
            request.setblocking(True)
            request.settimeout(None)
            self.fake._ws.handler(request, client_address)
            return
        super().finish_request(request, client_address)


def _when(text: str | None, default: float) -> float:
    if not text:
        return default
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _handler(fake: FakeAlpaca) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            import socket  # headers and body go in two writes: no Nagle delay between them

            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload = fake.handle(self.command, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = _serve

    return Handler


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


if __name__ == "__main__":  # serve until interrupted, for trying the CLI without an account
    import signal
    import time as _time

    fake = FakeAlpaca().start()
    fake.add_news(1, _time.time() - 300, "Apple beats estimates, raises outlook", ["AAPL"])
    for name, value in fake.env().items():
        print(f"export {name}={value}", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    fake.stop()
