"""`rawe doctor`: is everything RAWE needs reachable and usable? One line per check.

Checks, in order: Redis (PING), Alpaca keys present, the account (status, equity), the
market clock, market data (the latest trade of one stock and one crypto symbol of the
settings), news (the latest article). News is optional (prices run without it); the others
are needed, and Redis can be left out with --no-redis (an embedded `rawe run` needs none).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # OK, FAIL or SKIP
    detail: str
    needed: bool = True

    @property
    def failed(self) -> bool:
        return self.status == FAIL and self.needed

    def line(self) -> str:
        tail = "" if self.needed else " (optional)"
        return f"{self.status:<5} {self.name:<12} {self.detail}{tail}"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


async def check_redis(url: str) -> Check:
    from rawe_cli.bus.streams import _safe_url, connect
    from rawe_cli.errors import RaweError

    started = time.perf_counter()
    try:
        client = await connect(url)
    except RaweError as exc:
        return Check("redis", FAIL, str(exc))
    ms = (time.perf_counter() - started) * 1000
    await client.aclose()
    return Check("redis", OK, f"{_safe_url(url)} answered PING ({ms:.1f} ms)")


def check_alpaca(symbols: tuple[str, ...], env: Mapping[str, str] | None = None, *,
                 live: bool = False) -> list[Check]:
    from rawe_cli.brokers.alpaca import AlpacaBroker, classify, config_from_env, is_crypto
    from rawe_cli.errors import RaweError

    try:
        cfg = config_from_env(env, live=live)
    except RaweError as exc:
        why = "no usable keys"
        return [Check("alpaca keys", FAIL, str(exc)),
                Check("account", SKIP, why), Check("clock", SKIP, why),
                Check("market data", SKIP, why), Check("news", SKIP, why, needed=False)]
    checks = [Check("alpaca keys", OK, f"APCA_API_KEY_ID {cfg.key_id[:4]}... set, "
                    f"{'LIVE' if live else 'paper'} trading at {cfg.endpoint}")]
    broker = AlpacaBroker(cfg)
    try:
        acct = broker.check_account()
        checks.append(Check("account", OK, f"{acct['account_number']} {acct['status']}, "
                            f"equity ${acct['equity']:,.2f}, buying power "
                            f"${acct['buying_power']:,.2f}"))
    except RaweError as exc:
        checks.append(Check("account", FAIL, str(exc)))
    try:
        clock = broker.client.get_clock()
        state = (f"market open, closes {_when(clock.next_close.timestamp())}" if clock.is_open
                 else f"market closed, opens {_when(clock.next_open.timestamp())}; equity "
                 f"decisions are skipped until then, crypto trades")
        checks.append(Check("clock", OK, state))
    except Exception as exc:
        checks.append(Check("clock", FAIL, str(classify(exc))))
    checks.append(_market_data(cfg, symbols, is_crypto))
    checks.append(_news(cfg, symbols))
    return checks


def _market_data(cfg: Any, symbols: tuple[str, ...], is_crypto: Any) -> Check:
    from rawe_cli.brokers.alpaca import classify, quiet_import
    from rawe_cli.feeds.alpaca import data_clients

    stock = next((s for s in symbols if not is_crypto(s)), None)
    coin = next((s for s in symbols if is_crypto(s)), None)
    with quiet_import():
        from alpaca.data.requests import CryptoLatestTradeRequest, StockLatestTradeRequest
    stocks, cryptos, _ = data_clients(cfg)
    parts = []
    try:
        for sym, client, request, method in (
            (stock, stocks, StockLatestTradeRequest, "get_stock_latest_trade"),
            (coin, cryptos, CryptoLatestTradeRequest, "get_crypto_latest_trade"),
        ):
            if sym is None:
                continue
            trade = getattr(client, method)(request(symbol_or_symbols=[sym])).get(sym)
            if trade is None:
                return Check("market data", FAIL, f"no latest trade for {sym}")
            parts.append(f"{sym} {float(trade.price):g} at {_when(trade.timestamp.timestamp())}")
    except Exception as exc:
        return Check("market data", FAIL, f"{cfg.data_url or 'https://data.alpaca.markets'}: "
                     f"{classify(exc)}")
    return Check("market data", OK, ", ".join(parts) or "no symbols in the settings")


def _news(cfg: Any, symbols: tuple[str, ...]) -> Check:
    from rawe_cli.brokers.alpaca import classify, quiet_import
    from rawe_cli.feeds.alpaca import data_clients

    with quiet_import():
        from alpaca.data.requests import NewsRequest
    _, _, news = data_clients(cfg)
    tags = ",".join(s.replace("/", "") for s in symbols)
    try:
        found = news.get_news(NewsRequest(symbols=tags, limit=1, sort="desc"))
    except Exception as exc:
        return Check("news", FAIL, str(classify(exc)), needed=False)
    articles = found.data.get("news", [])
    if not articles:
        return Check("news", OK, f"reachable, no articles about {tags}", needed=False)
    art = articles[0]
    return Check("news", OK, f"latest {_when(art.created_at.timestamp())}: "
                 f"{art.headline[:70]}", needed=False)
