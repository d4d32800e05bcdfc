"""A fake of Alpaca's market-data and news websocket streams, on 127.0.0.1, in its own thread.

It speaks what alpaca-py 0.44's `StockDataStream`, `CryptoDataStream` and `NewsDataStream`
speak (msgpack frames, each an array of maps): on connect ``[{"T": "success", "msg":
"connected"}]``; then the client's ``{"action": "auth", "key", "secret"}`` is answered
``authenticated`` (or ``[{"T": "error", "code": 402, "msg": "auth failed"}]`` for other keys);
then every ``subscribe`` is acknowledged with a ``subscription`` frame. Bars carry ``t`` as a
msgpack Timestamp (ext type -1), news ``created_at``/``updated_at`` too, as Alpaca sends them.

The same port answers the HTTP GETs of the historical data API by handing them to a
`FakeAlpaca` (tests/fake_alpaca.py), so that one APCA_API_DATA_URL (``http://127.0.0.1:PORT``)
stands for the REST and the stream endpoints, as a proxy would.

Paths: ``/v2/iex``, ``/v2/sip``, ``/v1beta3/crypto/us``, ``/v1beta1/news``. Every method is
thread-safe (the test's thread talks to the server's loop):

* ``wait_subscribed(path)``: a client is authenticated and subscribed;
* ``push(path, msgs)``: frames to the connected client; ``drop(path)`` closes its socket;
* ``block(path)`` / ``unblock(path)``: while blocked, connections are closed at once (the
  stream stays down and alpaca-py keeps retrying with its backoff);
* ``script``: frames sent right after each subscription, by path (a first connection only).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgpack
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

STOCKS, CRYPTO, NEWS = "/v2/iex", "/v1beta3/crypto/us", "/v1beta1/news"
PATHS = ("/v2/iex", "/v2/sip", CRYPTO, NEWS)


def ts(seconds: float) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_datetime(datetime.fromtimestamp(seconds, UTC))


def bar_msg(symbol: str, start: float, o: float, h: float, low: float, c: float,
            v: float = 100.0) -> dict[str, Any]:
    """A one-minute bar as the bars channel sends it (`start`: the minute's first second)."""
    return {"T": "b", "S": symbol, "o": o, "h": h, "l": low, "c": c, "v": v, "t": ts(start),
            "n": 3, "vw": c}


def news_msg(id_: int, created: float, headline: str, symbols: Iterable[str],
             summary: str = "") -> dict[str, Any]:
    return {"T": "n", "id": id_, "headline": headline, "summary": summary,
            "author": "Fake Wire", "created_at": ts(created), "updated_at": ts(created),
            "url": None, "content": "", "symbols": list(symbols), "source": "benzinga"}


class FakeDataStreams:
    def __init__(self, rest: Any = None, key: str = "test-key", secret: str = "test-secret"
                 ) -> None:
        self.rest = rest  # a FakeAlpaca for the HTTP GETs, or None (404)
        self.key, self.secret = key, secret
        self.script: dict[str, list[dict[str, Any]]] = {}
        self.connections: dict[str, int] = dict.fromkeys(PATHS, 0)
        self.subscriptions: dict[str, dict[str, list[str]]] = {p: {} for p in PATHS}
        self.auths: list[dict[str, Any]] = []
        self._conn: dict[str, ServerConnection] = {}
        self._subscribed: dict[str, threading.Event] = {p: threading.Event() for p in PATHS}
        self._blocked: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeDataStreams:
        self._thread.start()
        async def listen() -> Any:
            return await serve(self._session, "127.0.0.1", 0, process_request=self._http)

        self._server = self._call(listen())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeDataStreams:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- knobs (from the test's thread) -----------------------------------------------------

    def wait_subscribed(self, path: str, timeout: float = 60.0) -> bool:
        return self._subscribed[path].wait(timeout)

    def push(self, path: str, msgs: dict[str, Any] | list[dict[str, Any]]) -> None:
        frames = [msgs] if isinstance(msgs, dict) else list(msgs)

        async def send() -> None:
            await self._conn[path].send(msgpack.packb(frames, datetime=False))

        self._call(send())

    def drop(self, path: str, code: int = 1011) -> None:
        self._subscribed[path].clear()

        async def close() -> None:
            conn = self._conn.get(path)
            if conn is not None:
                await conn.close(code, "fake drop")

        self._call(close())

    def block(self, path: str) -> None:
        self._blocked.add(path)

    def unblock(self, path: str) -> None:
        self._blocked.discard(path)

    # -- the protocol -----------------------------------------------------------------------

    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None  # a stream: the handshake goes on
        if self.rest is None:
            status, payload = 404, {"code": 40410000, "message": "no REST here"}
        else:
            status, payload = self.rest.handle("GET", request.path, request.headers, b"")
        body = json.dumps(payload).encode()
        headers = Headers({"Content-Type": "application/json",
                           "Content-Length": str(len(body)), "Connection": "close"})
        return Response(status, "OK" if status < 400 else "Error", headers, body)

    async def _send(self, ws: ServerConnection, frames: list[dict[str, Any]]) -> None:
        await ws.send(msgpack.packb(frames, datetime=False))

    async def _session(self, ws: ServerConnection) -> None:
        path = ws.request.path.split("?")[0]
        if path not in self.connections or path in self._blocked:
            await ws.close(1013, "try again later")
            return
        self.connections[path] += 1
        first = self.connections[path] == 1
        await self._send(ws, [{"T": "success", "msg": "connected"}])
        auth = msgpack.unpackb(await ws.recv())
        self.auths.append(auth)
        if auth.get("key") != self.key or auth.get("secret") != self.secret:
            await self._send(ws, [{"T": "error", "code": 402, "msg": "auth failed"}])
            await ws.wait_closed()
            return
        await self._send(ws, [{"T": "success", "msg": "authenticated"}])
        self._conn[path] = ws
        try:
            async for raw in ws:
                msg = msgpack.unpackb(raw)
                if msg.get("action") != "subscribe":
                    continue
                subs = self.subscriptions[path]
                for channel, symbols in msg.items():
                    if channel != "action":
                        subs[channel] = sorted(set(subs.get(channel, [])) | set(symbols))
                await self._send(ws, [{"T": "subscription", **subs}])
                self._subscribed[path].set()
                if first and self.script.get(path):
                    await self._send(ws, self.script[path])
        except Exception:  # the client went away
            pass
        finally:
            if self._conn.get(path) is ws:
                del self._conn[path]
