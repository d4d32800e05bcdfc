"""News articles -> story threads -> narrative events, for recorded history. Pure.

A *story thread* is one narrative: articles about the same set of symbols whose headlines
overlap, each within `gap` seconds of the thread's previous article. In time order, an
article joins the open thread of its symbol set whose headline words it shares most (at
least `overlap` of its own words, after a light stemming), else it starts a new thread.

Each article of a thread is one narrative event at the article's time:

* intensity = min(1, decayed article count / `full_weight`): every article of the thread so
  far counts ``0.5 ** (age / half_life)``, so a story that keeps being written about is
  loud and one that stops fades;
* sentiment = the same decay-weighted mean of the articles' sentiments (the scorer's);
* narrative_id = ``news:<SYMBOLS>:<first article's UTC time>:<first article's id>``, stable
  across runs and resumed downloads.

(core/news.py does the live feed's version: one narrative a symbol a day.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rawe_cli.core.news import Article
from rawe_cli.models import NarrativeEvent

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP_TEXT = """
    a an the and or but of in on at to for from by with as is are was were be been it its
    this that these those after before over under amid into out up down than then new says
    said report reports shares stock stocks inc corp co ltd plc us
"""
STOP = frozenset(_STOP_TEXT.split())
_SUFFIXES = ("ing", "ed", "s")


def stem(word: str) -> str:
    """A light stemmer: beats/beat, cuts/cut, raised/raise land together."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:5]


def headline_words(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in _WORD.findall(text.lower())
                     if w not in STOP and len(w) >= 3)


@dataclass(frozen=True, slots=True)
class StoryParams:
    gap: float = 6 * 3600.0  # an article further than this after a thread's last one: new
    overlap: float = 0.34  # share of an article's headline words already in the thread
    half_life: float = 3 * 3600.0  # an article's weight halves in this time
    full_weight: float = 3.0  # decayed article count at which intensity reaches 1


@dataclass(slots=True)
class Thread:
    symbols: tuple[str, ...]
    articles: list[Article] = field(default_factory=list)
    words: set[str] = field(default_factory=set)

    @property
    def last(self) -> float:
        return self.articles[-1].created_at

    @property
    def id(self) -> str:
        first = self.articles[0]
        when = time.strftime("%Y%m%dT%H%M", time.gmtime(first.created_at))
        return f"news:{'+'.join(self.symbols)}:{when}:{first.id}"


def _order(a: Article) -> tuple[float, str]:
    return a.created_at, a.id


def group(articles: Iterable[Article], params: StoryParams | None = None) -> list[Thread]:
    """The story threads of `articles` (deduplicated by id), in order of their first article."""
    p = params or StoryParams()
    seen: set[str] = set()
    threads: list[Thread] = []
    open_by_symbols: dict[tuple[str, ...], list[Thread]] = {}
    for art in sorted(articles, key=_order):
        if art.id in seen or not art.symbols:
            continue
        seen.add(art.id)
        key = tuple(sorted(set(art.symbols)))
        words = headline_words(art.headline)
        best: Thread | None = None
        best_share = 0.0
        alive = [t for t in open_by_symbols.get(key, []) if art.created_at - t.last <= p.gap]
        open_by_symbols[key] = alive
        for thread in alive:
            share = len(words & thread.words) / len(words) if words else 0.0
            if share >= p.overlap and share >= best_share:
                best, best_share = thread, share
        if best is None:
            best = Thread(key)
            threads.append(best)
            alive.append(best)
        best.articles.append(art)
        best.words |= words
    return threads


def thread_events(thread: Thread, sentiment: Callable[[Article], float],
                  params: StoryParams | None = None) -> list[NarrativeEvent]:
    """One event per article of the thread (see module doc)."""
    p = params or StoryParams()
    out: list[NarrativeEvent] = []
    total = weighted = 0.0  # running decayed sums: constant work an article
    prev: float | None = None
    for art in thread.articles:
        if prev is not None:
            decay = 0.5 ** ((art.created_at - prev) / p.half_life)
            total, weighted = total * decay, weighted * decay
        total += 1.0
        weighted += sentiment(art)
        prev = art.created_at
        mood = weighted / total
        out.append(NarrativeEvent(
            timestamp=art.created_at,
            narrative_id=thread.id,
            symbols=thread.symbols,
            intensity=round(min(1.0, total / p.full_weight), 6),
            sentiment=round(max(-1.0, min(1.0, mood)), 6),
            headline=art.headline,
            source=art.source or "alpaca-news",
        ))
    return out


def story_events(articles: Iterable[Article], sentiment: Callable[[Article], float],
                 params: StoryParams | None = None) -> list[NarrativeEvent]:
    """Every thread's events, in time order (then narrative id)."""
    events = [e for t in group(articles, params) for e in thread_events(t, sentiment, params)]
    events.sort(key=lambda e: (e.timestamp, e.narrative_id))
    return events
