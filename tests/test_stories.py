"""News articles grouped into story threads (core/stories.py)."""

from __future__ import annotations

import pytest

from rawe_cli.core.news import Article
from rawe_cli.core.stories import StoryParams, group, headline_words, story_events

H = 3600.0
T0 = 1_736_175_600.0  # 2025-01-06T15:00Z


def art(i: int, hours: float, headline: str, symbols: tuple[str, ...] = ("AAPL",)) -> Article:
    return Article(str(i), T0 + hours * H, headline, "", symbols, "wire")


def const(value: float):  # a fixed sentiment, to read intensities and means
    return lambda a: value


def test_overlapping_headlines_on_the_same_symbols_within_hours_are_one_thread() -> None:
    threads = group([
        art(1, 0, "Apple beats estimates, raises outlook"),
        art(2, 1, "Apple earnings beat estimates as iPhone sales rise"),
        art(3, 2.5, "Apple outlook raised after the earnings beat"),
    ])
    assert len(threads) == 1 and [a.id for a in threads[0].articles] == ["1", "2", "3"]


def test_other_symbols_other_stories_and_long_gaps_start_new_threads() -> None:
    threads = group([
        art(1, 0, "Apple beats estimates, raises outlook"),
        art(2, 1, "Apple beats estimates, raises outlook", ("AAPL", "MSFT")),  # other symbols
        art(3, 1.5, "Apple faces EU antitrust probe over app store"),  # another story
        art(4, 30, "Apple beats estimates again, raises outlook"),  # a day later
    ])
    assert [[a.id for a in th.articles] for th in threads] == [["1"], ["2"], ["3"], ["4"]]
    assert threads[1].symbols == ("AAPL", "MSFT")


def test_the_gap_and_overlap_are_parameters() -> None:
    arts = [art(1, 0, "Apple beats estimates"), art(2, 3, "Apple beats estimates")]
    assert len(group(arts, StoryParams(gap=2 * H))) == 2
    assert len(group(arts, StoryParams(gap=4 * H))) == 1
    loose = [art(1, 0, "Apple beats estimates"), art(2, 1, "Apple opens a store")]
    assert len(group(loose, StoryParams(overlap=0.34))) == 2  # only "apple" shared: 1/3
    assert len(group(loose, StoryParams(overlap=0.3))) == 1


def test_intensity_grows_with_the_article_count_and_decays_with_age() -> None:
    p = StoryParams(half_life=H, full_weight=3.0)
    events = story_events([art(1, 0, "Apple beats estimates"),
                           art(2, 0, "Apple beats estimates again"),
                           art(3, 1, "Apple beats estimates, shares up")], const(0.5), p)
    assert [e.intensity for e in events] == pytest.approx([1 / 3, 2 / 3, (2 * 0.5 + 1) / 3])
    assert all(e.narrative_id == events[0].narrative_id for e in events)
    assert events[0].narrative_id == "news:AAPL:20250106T1500:1"
    capped = story_events([art(i, 0, "Apple beats estimates") for i in range(6)], const(0), p)
    assert max(e.intensity for e in capped) == 1.0


def test_sentiment_is_the_decay_weighted_mean_of_the_scorer() -> None:
    scores = {"1": 1.0, "2": -0.5}
    p = StoryParams(half_life=H)
    events = story_events([art(1, 0, "Apple beats estimates"),
                           art(2, 1, "Apple beats estimates, but shares slip")],
                          lambda a: scores[a.id], p)
    assert events[0].sentiment == pytest.approx(1.0)
    assert events[1].sentiment == pytest.approx((0.5 * 1.0 - 0.5) / 1.5)


def test_duplicates_are_dropped_and_order_does_not_matter() -> None:
    arts = [art(2, 1, "Apple earnings beat estimates"), art(1, 0, "Apple beats estimates"),
            art(1, 0, "Apple beats estimates")]
    events = story_events(arts, const(0.2))
    assert [e.headline for e in events] == ["Apple beats estimates",
                                            "Apple earnings beat estimates"]


def test_headline_words_drop_stop_words_and_stem_lightly() -> None:
    assert headline_words("Shares of Apple beat the estimates") == \
        headline_words("Apple beats estimate")
