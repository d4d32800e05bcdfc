"""Headline sentiment scorers: a small transparent word list, VADER, and the blend of both.

Three scorers, each a function ``(headline, summary) -> [-1, 1]`` (`SCORERS`, `scorer`):

* ``words``: the word list below (`words_score`);
* ``vader``: vaderSentiment's compound score (a general-purpose lexicon with rules for
  negation, intensifiers and "but"; it ships its lexicon in the package): headline twice,
  summary once;
* ``blend`` (the default, `DEFAULT_SCORER`): the word list's score where it is not 0, else
  VADER's.
  Financial headlines carry direction in words a general lexicon does not know ("beats",
  "downgrade", "plunges"); VADER knows the rest of the language ("disappoint", "solid",
  "blowout"). On the labelled headlines in tests/data/headlines.csv (120, balanced) the
  blend is the best of the three (README, "Sentiment").

The word list:

Words are lower-cased runs of letters (with an inner apostrophe). A word in POSITIVE counts
+1, one in NEGATIVE counts -1; a negator (NEGATORS) flips the sign of the sentiment words in
the next three words ("not approved", "no growth"), up to a punctuation mark or "but".
Headline words count twice, summary words once. With P positive and N negative counts,

    sentiment = (P - N) / (P + N + 1)

so one positive headline word gives 2/3, a headline with nothing in the lists gives 0, and
mixed news lands near 0. The +1 keeps a single word from reading as certainty. The lists are
short on purpose: every score can be explained by pointing at the words (`explain`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any


def _list(text: str) -> frozenset[str]:
    return frozenset(text.split())


POSITIVE = _list("""
    beat beats beating surge surges surged soar soars soared jump jumps jumped rally rallies
    rallied gain gains gained climb climbs climbed rise rises rising rose record upgrade
    upgrades upgraded outperform outperforms outperformed strong stronger strongest growth
    grows grew profit profits profitable raise raises raised bullish approval approve
    approves approved win wins won expand expands expanded top tops topped exceed exceeds
    exceeded boost boosts boosted rebound rebounds rebounded optimism optimistic
    breakthrough partnership buyback upbeat higher recovers recovery
""")

NEGATIVE = _list("""
    miss misses missed fall falls fell drop drops dropped plunge plunges plunged slump
    slumps slumped sink sinks sank tumble tumbles tumbled slide slides slid downgrade
    downgrades downgraded underperform underperforms weak weaker weakest loss losses lose
    loses cut cuts lawsuit sued probe investigation recall recalls bearish decline declines
    declined warning warns warned fraud bankruptcy bankrupt layoffs layoff crash crashes
    crashed fears fear concern concerns delay delays delayed halt halts halted lower
    downbeat default defaults breach hack hacked shortfall selloff
""")

NEGATORS = _list("not no never without isn't aren't wasn't doesn't didn't won't can't "
                 "cannot fails fail")

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|[,.;:!?]")
_BOUNDARY = frozenset({",", ".", ";", ":", "!", "?", "but"})
_NEGATION_REACH = 3


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def explain(text: str) -> list[tuple[str, int]]:
    """The sentiment words of `text` with their sign after negation."""
    out: list[tuple[str, int]] = []
    flip_left = 0
    for w in _TOKEN.findall(text.lower()):
        if w in _BOUNDARY:
            flip_left = 0
            continue
        if w in NEGATORS:
            flip_left = _NEGATION_REACH
            continue
        sign = 1 if w in POSITIVE else -1 if w in NEGATIVE else 0
        if sign:
            out.append((w, -sign if flip_left else sign))
        if flip_left:
            flip_left -= 1
    return out


def counts(text: str) -> tuple[int, int]:
    """(positive, negative) counts of `text`."""
    signs = [s for _, s in explain(text)]
    return sum(1 for s in signs if s > 0), sum(1 for s in signs if s < 0)


def words_score(headline: str, summary: str = "") -> float:
    """Sentiment in [-1, 1] of an article from its headline (x2) and summary: word list."""
    hp, hn = counts(headline)
    sp, sn = counts(summary)
    p, n = 2 * hp + sp, 2 * hn + sn
    return (p - n) / (p + n + 1)


@cache
def _vader() -> Any:
    # vaderSentiment reads its lexicon (package data) once, when the analyzer is built
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_score(headline: str, summary: str = "") -> float:
    """VADER's compound score in [-1, 1]: headline (x2) and summary."""
    analyzer = _vader()
    head = float(analyzer.polarity_scores(headline)["compound"]) if headline else 0.0
    if not summary:
        return head
    return (2 * head + float(analyzer.polarity_scores(summary)["compound"])) / 3


def blend_score(headline: str, summary: str = "") -> float:
    """The word list's score where it is not 0 (it found words, not in balance), else
    VADER's."""
    own = words_score(headline, summary)
    return own if own else vader_score(headline, summary)


SCORERS: dict[str, Callable[[str, str], float]] = {
    "words": words_score, "vader": vader_score, "blend": blend_score}
DEFAULT_SCORER = "blend"


def scorer(name: str = DEFAULT_SCORER) -> Callable[[str, str], float]:
    """The scorer called `name` (KeyError for an unknown one; settings check the name)."""
    return SCORERS[name]


def score(headline: str, summary: str = "", using: str = DEFAULT_SCORER) -> float:
    """Sentiment in [-1, 1] of an article, by the scorer `using` (default: the blend)."""
    return SCORERS[using](headline, summary)
