"""News articles -> narrative events. Pure: `now` is passed in.

For each symbol, the articles about it in the last `lookback` seconds form one narrative:

* weight of an article = 0.5 ** (age / half_life) (a fresh article 1, one half_life old 0.5);
* intensity = min(1, sum of weights / full_weight): `full_weight` fresh articles make a
  narrative fully loud, and the intensity falls as they age, so a story that stops being
  written about fades;
* sentiment = the weight-averaged sentiment of the articles (core/sentiment.py);
* narrative_id = ``news:<SYMBOL>:<UTC date of now>``: a symbol's news flow of one day is one
  narrative, so the narrative engine sees it build and fade, and the next day starts anew
  (with a fresh starting price).

Crypto symbols: Alpaca's news tags them without the slash (BTCUSD); `our_symbols` maps back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from rawe_cli.core.sentiment import DEFAULT_SCORER, score
from rawe_cli.models import NarrativeEvent


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    created_at: float
    headline: str
    summary: str
    symbols: tuple[str, ...]  # our spelling (BTC/USD)
    source: str = ""

    @property
    def sentiment(self) -> float:
        return score(self.headline, self.summary)


@dataclass(frozen=True, slots=True)
class NewsParams:
    half_life: float = 1800.0  # seconds for an article's weight to halve
    lookback: float = 7200.0  # articles older than this are forgotten
    full_weight: float = 3.0  # summed weight at which intensity reaches 1
    scorer: str = DEFAULT_SCORER  # the headline scorer (the `sentiment` setting)


def our_symbols(tags: Iterable[str], symbols: Iterable[str]) -> tuple[str, ...]:
    """Alpaca's news tags mapped to the symbols we trade (others dropped)."""
    by_tag = {s.replace("/", "").upper(): s for s in symbols}
    out: list[str] = []
    for tag in tags:
        s = by_tag.get(tag.replace("/", "").upper())
        if s is not None and s not in out:
            out.append(s)
    return tuple(out)


def narrative_id(symbol: str, now: float) -> str:
    return f"news:{symbol}:{time.strftime('%Y-%m-%d', time.gmtime(now))}"


def news_events(articles: Iterable[Article], now: float,
                params: NewsParams | None = None) -> list[NarrativeEvent]:
    """One narrative event per symbol with news in the lookback window, sorted by symbol."""
    p = params or NewsParams()
    per_symbol: dict[str, list[tuple[float, Article]]] = {}
    for art in articles:
        age = max(0.0, now - art.created_at)
        if age > p.lookback:
            continue
        weight = 0.5 ** (age / p.half_life)
        for symbol in art.symbols:
            per_symbol.setdefault(symbol, []).append((weight, art))
    events: list[NarrativeEvent] = []
    for symbol in sorted(per_symbol):
        items = per_symbol[symbol]
        total = sum(w for w, _ in items)
        sentiment = sum(w * score(a.headline, a.summary, p.scorer) for w, a in items) / total
        newest = max(items, key=lambda wa: (wa[1].created_at, wa[1].id))[1]
        events.append(NarrativeEvent(
            timestamp=now,
            narrative_id=narrative_id(symbol, now),
            symbols=(symbol,),
            intensity=round(min(1.0, total / p.full_weight), 6),
            sentiment=round(max(-1.0, min(1.0, sentiment)), 6),
            headline=newest.headline,
            source="alpaca-news",
        ))
    return events
