"""Where Alpaca's websocket streams are, derived from the two REST URLs.

`APCA_API_BASE_URL` (trading) and `APCA_API_DATA_URL` (market data, news) are enough to point
every REST *and* stream endpoint at one place (a proxy, a local fake): ``http`` becomes ``ws``
(``https`` ``wss``) and Alpaca's own paths follow. The result goes to alpaca-py's
``url_override``, which uses it verbatim. Without a URL the SDK's default endpoints stay.

=====================  ============================================
stream                 URL
=====================  ============================================
trade updates          ``<APCA_API_BASE_URL>/stream``
stock bars and trades  ``<APCA_API_DATA_URL>/v2/{feed}`` (iex, sip)
crypto                 ``<APCA_API_DATA_URL>/v1beta3/crypto/us``
news                   ``<APCA_API_DATA_URL>/v1beta1/news``
=====================  ============================================

Alpaca's own REST data hosts serve their streams from ``stream.``-prefixed hosts
(``data.alpaca.markets`` -> ``stream.data.alpaca.markets``); those are mapped as well.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DATA_STREAM_PATHS = {
    "crypto": "/v1beta3/crypto/us",
    "news": "/v1beta1/news",
}
STOCK_FEEDS = ("iex", "sip")
_ALPACA_DATA_HOSTS = ("data.alpaca.markets", "data.sandbox.alpaca.markets")


def ws_url(http_url: str) -> str:
    """``http(s)://host[:port][/prefix]`` -> ``ws(s)://host[:port][/prefix]`` (no slash at the
    end). Alpaca's REST data hosts become their stream hosts."""
    parts = urlsplit(http_url.strip().rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"{http_url!r} is not an http(s) URL")
    netloc = parts.netloc
    if parts.hostname in _ALPACA_DATA_HOSTS:
        netloc = f"stream.{netloc}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def trading_stream_url(trading_url: str | None) -> str | None:
    """The trade-updates stream for a trading REST URL; None: alpaca-py's default (paper or
    live, by the client's `paper` flag)."""
    return f"{ws_url(trading_url)}/stream" if trading_url else None


def data_stream_url(data_url: str | None, kind: str, feed: str = "iex") -> str | None:
    """The market-data stream of `kind` (``stock``, ``crypto`` or ``news``) for a data REST
    URL; None: alpaca-py's default."""
    if kind == "stock":
        if feed not in STOCK_FEEDS:
            raise ValueError(f"unknown stock feed {feed!r} (choose {' or '.join(STOCK_FEEDS)})")
        path = f"/v2/{feed}"
    elif kind in DATA_STREAM_PATHS:
        path = DATA_STREAM_PATHS[kind]
    else:
        raise ValueError(f"unknown data stream {kind!r}")
    return f"{ws_url(data_url)}{path}" if data_url else None
