"""The sentiment scorers against a labelled set of financial headlines (tests/data)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rawe_cli.config import Settings
from rawe_cli.core import sentiment

DATA = Path(__file__).parent / "data" / "headlines.csv"
LABELS = ("positive", "negative", "neutral")
THRESHOLD = {"words": 0.0, "vader": 0.05, "blend": 0.05}  # |score| above: not neutral


def labelled() -> list[tuple[str, str]]:
    with DATA.open(encoding="utf-8", newline="") as fh:
        return [(r["label"], r["headline"]) for r in csv.DictReader(fh)]


def label(x: float, threshold: float) -> str:
    return "positive" if x > threshold else "negative" if x < -threshold else "neutral"


def measure(name: str) -> tuple[float, float]:
    """(accuracy, macro-F1) of a scorer on the labelled headlines."""
    rows = labelled()
    score = sentiment.scorer(name)
    pred = [label(score(h, ""), THRESHOLD[name]) for _, h in rows]
    gold = [g for g, _ in rows]
    accuracy = sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold)
    f1s = []
    for c in LABELS:
        tp = sum(p == c == g for p, g in zip(pred, gold, strict=True))
        fp = sum(p == c != g for p, g in zip(pred, gold, strict=True))
        fn = sum(g == c != p for p, g in zip(pred, gold, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return accuracy, sum(f1s) / len(f1s)


def test_the_labelled_set_is_balanced() -> None:
    rows = labelled()
    counts = {c: sum(1 for g, _ in rows if g == c) for c in LABELS}
    assert len(rows) >= 100 and len(set(counts.values())) == 1, counts
    assert len({h for _, h in rows}) == len(rows)  # no headline twice


def test_the_default_scorer_is_at_least_as_good_as_each_other() -> None:
    figures = {name: measure(name) for name in sentiment.SCORERS}
    default = figures[sentiment.DEFAULT_SCORER]
    for accuracy, f1 in figures.values():
        assert default[0] >= accuracy and default[1] >= f1, figures
    # the figures the README states (accuracy, macro-F1)
    assert figures["words"] == pytest.approx((0.750, 0.754), abs=5e-4)
    assert figures["vader"] == pytest.approx((0.667, 0.656), abs=5e-4)
    assert figures["blend"] == pytest.approx((0.825, 0.826), abs=5e-4)
    assert Settings().sentiment == sentiment.DEFAULT_SCORER


def test_each_scorer_is_in_range_and_reads_direction() -> None:
    for name in sentiment.SCORERS:
        s = sentiment.scorer(name)
        assert s("Shares soar after a record quarter", "") > 0
        assert s("Shares plunge after a disappointing quarter", "") < 0
        assert -1.0 <= s("miss " * 40, "plunge " * 40) <= 1.0


def test_the_blend_falls_back_to_vader_where_the_word_list_is_silent() -> None:
    assert sentiment.words_score("Disney theme parks deliver a disappointing quarter") == 0.0
    assert sentiment.blend_score("Disney theme parks deliver a disappointing quarter") < 0
    assert sentiment.blend_score("Apple beats estimates") == \
        sentiment.words_score("Apple beats estimates")


def test_the_live_news_feed_scores_with_the_chosen_scorer() -> None:
    from rawe_cli.core.news import Article, NewsParams, news_events
    from rawe_cli.core.sentiment import score

    head = "Shares soar as the company delivers a superb, wonderful quarter"
    art = Article("1", 1000.0, head, "", ("AAPL",))
    by = {name: news_events([art], 1000.0, NewsParams(scorer=name))[0].sentiment
          for name in ("words", "vader", "blend")}
    for name, got in by.items():
        assert got == round(max(-1.0, min(1.0, score(head, "", name))), 6)
    assert by["words"] != by["vader"]  # the setting changes what the feed publishes
