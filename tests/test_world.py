import itertools
import math

import pytest

from rawe_cli.feeds.synthetic import MOMENTUM, REVERSAL, SyntheticWorld, WorldParams


def sample(seed: int, n: int = 300):
    return list(SyntheticWorld(WorldParams(seed=seed)).ticks(n))


def test_same_seed_same_world_and_other_seed_other_world():
    a, b, c = sample(3), sample(3), sample(4)
    assert a == b
    assert [t.bars for t in a] != [t.bars for t in c]


def test_world_shape():
    p = WorldParams(symbols=("A", "B", "C"), seed=1, tick_seconds=5)
    ticks = list(SyntheticWorld(p).ticks(400))
    assert len(ticks) == 400
    assert ticks[1].timestamp - ticks[0].timestamp == 5
    for t in ticks:
        assert [b.symbol for b in t.bars] == ["A", "B", "C"]
        for b in t.bars:
            assert b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) and b.low > 0
        for e in t.events:
            assert e.intensity >= 0 and -1 <= e.sentiment <= 1 and set(e.symbols) <= {"A", "B", "C"}
    assert sum(len(t.events) for t in ticks) > 50


def _late_return_by_regime(seed: int, ticks: int = 6000, bar: float = 5.0):
    """Mean return, in the sentiment's direction and in units of the noise over the same
    bars, from a narrative's loudest mention to its last one (+5 bars), per regime."""
    out = {}
    for regimes in ((MOMENTUM,), (REVERSAL,)):
        p = WorldParams(seed=seed, regimes=regimes, tick_seconds=bar)
        world = list(SyntheticWorld(p).ticks(ticks))
        closes = [{b.symbol: b.close for b in t.bars} for t in world]
        peak: dict[str, tuple[float, int]] = {}
        last: dict[str, int] = {}
        meta: dict[str, tuple[str, float]] = {}
        for i, t in enumerate(world):
            for e in t.events:
                if e.intensity > peak.get(e.narrative_id, (-1.0, 0))[0]:
                    peak[e.narrative_id] = (e.intensity, i)
                last[e.narrative_id] = i
                meta[e.narrative_id] = (e.symbols[0], e.sentiment)
        moves = []
        for nid, (_, i) in peak.items():
            j = last[nid] + 5
            if j >= len(world):
                continue
            s, mood = meta[nid]
            noise = p.bar_vol() * math.sqrt(j - i)
            moves.append(math.copysign(1, mood) * math.log(closes[j][s] / closes[i][s]) / noise)
        out[regimes[0]] = sum(moves) / len(moves)
    return out


@pytest.mark.parametrize("bar", [5.0, 300.0, 86400.0])
def test_momentum_keeps_the_narrative_move_and_reversal_gives_it_back(bar):
    r = _late_return_by_regime(seed=11, bar=bar)
    assert r[MOMENTUM] > 0.1  # the price is still following the narrative after its peak
    assert r[REVERSAL] < -0.1  # the price gives the move back as the narrative fades


@pytest.mark.parametrize("bar", [60.0, 3600.0, 86400.0])
def test_the_world_is_the_same_shape_at_every_bar_size(bar):
    p = WorldParams(seed=5, tick_seconds=bar, symbols=("A", "B"))
    ticks = list(SyntheticWorld(p).ticks(3000))
    assert ticks[1].timestamp - ticks[0].timestamp == bar
    rets = [math.log(b.close / a.close) for t0, t1 in itertools.pairwise(ticks)
            for a, b in zip(t0.bars, t1.bars, strict=True)]
    sd = math.sqrt(sum(r * r for r in rets) / len(rets))
    assert 0.8 < sd / p.bar_vol() < 1.6  # per-bar noise scales with the bar size
    assert p.bar_vol() == pytest.approx(0.35 * math.sqrt(bar / (365.25 * 86400)))
    for prev, t in itertools.pairwise(ticks):  # events fall between bars
        assert all(prev.timestamp <= e.timestamp <= t.timestamp for e in t.events)
    assert any(e.timestamp < t.timestamp for t in ticks for e in t.events)


def test_a_world_with_no_edge_has_no_real_narrative():
    p = WorldParams(seed=5, real_share=0.0)
    ticks = list(SyntheticWorld(p).ticks(2000))
    assert sum(len(t.events) for t in ticks) > 100
    r = _late_return_by_regime_params(p)
    assert abs(r) < 0.15


def _late_return_by_regime_params(p: WorldParams) -> float:
    world = list(SyntheticWorld(p).ticks(6000))
    closes = [{b.symbol: b.close for b in t.bars} for t in world]
    first: dict[str, tuple[int, str, float]] = {}
    for i, t in enumerate(world):
        for e in t.events:
            first.setdefault(e.narrative_id, (i, e.symbols[0], e.sentiment))
    moves = []
    for i, s, mood in first.values():
        j = i + 40
        if j < len(world):
            moves.append(math.copysign(1, mood) * math.log(closes[j][s] / closes[i][s])
                         / (p.bar_vol() * math.sqrt(40)))
    return sum(moves) / len(moves)
