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
* ``bar_history`` (``add_bar``): when set, the historical bars endpoints serve these minute
  bars, between the request's start and end, instead of made-up ones.
"""

from __future__ import annotations

import json
import threading
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
        self.price_fn: Callable[[str], float] | None = None  # overrides `prices` when set
        self.on_data: Callable[[FakeAlpaca, str], None] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAlpaca:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

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
        self._advance(oid, first=True)
        return order

    def _advance(self, oid: str, first: bool = False) -> None:
        """Move the order one step along its fill plan."""
        order = self.orders[oid]
        if order["status"] in ("filled", "canceled", "rejected", "expired"):
            return
        if oid in self._held:
            return
        plan, step = self._plan_of[oid]
        if not first:
            step += 1
        if "/" not in order["symbol"] and not self.market_open:
            return  # equities do not fill while the market is closed
        if step >= len(plan):
            order["status"] = self.end_status
            order["canceled_at"] = iso(self.now())
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
            self.log.append((method, path, payload or dict(query)))
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
            arts.sort(key=lambda a: a["created_at"], reverse=True)
            limit = int(q.get("limit") or 50)
            return 200, {"news": arts[:limit], "next_page_token": None}
        return 404, {"code": 40410000, "message": f"no route {path}"}

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
