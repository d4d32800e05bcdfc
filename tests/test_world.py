import math

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


def _late_return_by_regime(seed: int, ticks: int = 6000):
    """Mean return, in the sentiment's direction, from a narrative's loudest mention to its
    last one (+5 ticks), per regime."""
    out = {}
    for regimes in ((MOMENTUM,), (REVERSAL,)):
        p = WorldParams(seed=seed, regimes=regimes)
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
            moves.append(math.copysign(1, mood) * math.log(closes[j][s] / closes[i][s]))
        out[regimes[0]] = sum(moves) / len(moves)
    return out


def test_momentum_keeps_the_narrative_move_and_reversal_gives_it_back():
    r = _late_return_by_regime(seed=11)
    assert r[MOMENTUM] > 0.002  # the price is still following the narrative after its peak
    assert r[REVERSAL] < -0.002  # the price gives the move back as the narrative fades
