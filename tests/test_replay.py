"""Replay files: parsing, merging into ticks, and every bad-data error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rawe_cli.feeds import replay
from rawe_cli.feeds.replay import ReplayError

HEADER = "timestamp,symbol,open,high,low,close,volume\n"


def write(d: Path, prices: str, narratives: list[object] | str | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "prices.csv").write_text(prices, encoding="utf-8")
    if narratives is None:
        narratives = []
    if isinstance(narratives, list):
        narratives = "".join(json.dumps(n) + "\n" for n in narratives)
    (d / "narratives.jsonl").write_text(narratives, encoding="utf-8")
    return d


GOOD_PRICES = (
    HEADER
    + "2026-01-02T14:30:05Z,MSFT,10,11,9,10.5,100\n"
    + "2026-01-02T14:30:00Z,MSFT,10,10.2,9.9,10,50\n"
    + "2026-01-02T14:30:00+00:00,AAPL,20,20.5,19.5,20.1,70\n"
    + "2026-01-02T14:30:05,AAPL,20.1,20.3,20,20.2,0\n"
)
EVENT = {"timestamp": "2026-01-02T14:30:05Z", "narrative_id": "n1", "assets": ["AAPL"],
         "intensity": 0.8, "sentiment": 0.5}


def test_reads_rows_in_any_order_and_merges_by_timestamp(tmp_path: Path) -> None:
    late = dict(EVENT, timestamp="2026-01-02T14:30:10Z", headline="h", source="s")
    d = write(tmp_path, GOOD_PRICES, [late, EVENT])
    data = replay.load(d)
    assert data.bars == 4 and data.events == 2
    assert data.symbols == ("AAPL", "MSFT")
    assert data.bar_seconds == 5.0
    ts = [t.timestamp for t in data.ticks]
    assert ts == sorted(ts) and len(ts) == 2  # a tick is a bar: no tick of an event's own
    first, second = data.ticks
    assert [b.symbol for b in first.bars] == ["AAPL", "MSFT"]
    assert first.events == ()
    assert second.timestamp - first.timestamp == 5.0
    assert [e.narrative_id for e in second.events] == ["n1"]
    assert data.dropped_events == 1  # the event after the last bar: nothing can act on it
    assert first.bars[0].close == 20.1 and first.regime == ""
    assert [t.index for t in data.ticks] == [0, 1]


def test_events_between_bars_go_to_the_next_bar(tmp_path: Path) -> None:
    rows = [f"2026-01-02T14:{m:02d}:00Z,X,10,11,9,10,1\n" for m in (30, 35, 40)]
    events = [dict(EVENT, assets=["X"], narrative_id=f"n{i}", timestamp=ts) for i, ts in
              enumerate(["2026-01-02T14:20:00Z", "2026-01-02T14:31:10Z",
                         "2026-01-02T14:34:59Z", "2026-01-02T14:35:00Z",
                         "2026-01-02T14:35:01Z"])]
    data = replay.load(write(tmp_path, HEADER + "".join(rows), events))
    assert data.bar_seconds == 300.0 and len(data.ticks) == 3
    assert [[e.narrative_id for e in t.events] for t in data.ticks] == [
        ["n0"], ["n1", "n2", "n3"], ["n4"]]
    assert all(e.timestamp <= t.timestamp for t in data.ticks for e in t.events)


def test_bar_size_is_each_symbols_own_spacing(tmp_path: Path) -> None:
    # two symbols whose hourly bars interleave: the merged timeline has 30-minute steps,
    # each symbol's own bars are an hour apart
    rows = []
    for h in range(6):
        rows.append(f"2026-01-02T{h:02d}:00:00Z,A,10,11,9,10,1\n")
        rows.append(f"2026-01-02T{h:02d}:30:00Z,B,10,11,9,10,1\n")
    data = replay.load(write(tmp_path, HEADER + "".join(rows)))
    assert data.bar_seconds == 3600.0


def test_extra_columns_in_any_order(tmp_path: Path) -> None:
    prices = ("volume,close,low,high,open,symbol,timestamp,note\n"
              "5,10,9,11,10,X,2026-01-02T00:00:00Z,hello\n")
    data = replay.load(write(tmp_path, prices))
    bar = data.ticks[0].bars[0]
    assert (bar.symbol, bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        "X", 10, 11, 9, 10, 5)


def test_sample_data_set_loads() -> None:
    data = replay.load(Path(__file__).parent.parent / "examples" / "data")
    assert data.bars > 1000 and data.events > 500 and len(data.symbols) >= 3


BAD_PRICES = [
    ("timestamp,symbol,open,high,low,volume\n", "prices.csv line 1: missing column 'close'"),
    (HEADER + "yesterday,A,1,1,1,1,1\n", "prices.csv line 2: bad timestamp 'yesterday'"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1,1,1\n2026-13-02T00:00:00Z,A,1,1,1,1,1\n",
     "prices.csv line 3: bad timestamp"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1,nan,1\n", "prices.csv line 2: close is NaN"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1,NaN,1\n", "prices.csv line 2: close is NaN"),
    (HEADER + "2026-01-02T00:00:00Z,A,-1,1,1,1,1\n", "prices.csv line 2: open is negative"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1,0,1\n", "prices.csv line 2: close is zero"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1,abc,1\n",
     "prices.csv line 2: close is not a number: 'abc'"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1,inf,1\n", "prices.csv line 2: close is infinite"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1,1,-5\n", "prices.csv line 2: volume is negative"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,2,1,5\n", "prices.csv line 2: high (1) is below low"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1\n", "prices.csv line 2: expected 7 fields, got 5"),
    (HEADER + "2026-01-02T00:00:00Z,,1,1,1,1,1\n", "prices.csv line 2: symbol is empty"),
    (HEADER + "2026-01-02T00:00:00Z,A,1,1,1,1,1\n\n2026-01-02T00:00:00Z,A,1,1,1,1,1\n",
     "prices.csv line 4: a second bar for A at 2026-01-02T00:00:00Z (first on line 2)"),
    (HEADER, "prices.csv: no bars"),
    ("", "prices.csv: empty file"),
]


@pytest.mark.parametrize(("prices", "message"), BAD_PRICES)
def test_bad_prices_name_file_and_line(tmp_path: Path, prices: str, message: str) -> None:
    d = write(tmp_path, prices)
    with pytest.raises(ReplayError) as err:
        replay.load(d)
    assert message in str(err.value)
    assert str(d / "prices.csv") in str(err.value)


OK_ROW = HEADER + "2026-01-02T00:00:00Z,A,1,1,1,1,1\n"
BAD_NARRATIVES = [
    ('{"timestamp": "2026-01-02T00:00:00Z",\n', "narratives.jsonl line 1: bad JSON"),
    (json.dumps(EVENT) + "\n\n[1, 2]\n", "narratives.jsonl line 3: expected a JSON object"),
    (json.dumps({k: v for k, v in EVENT.items() if k != "intensity"}) + "\n",
     "narratives.jsonl line 1: missing field 'intensity'"),
    (json.dumps(dict(EVENT, timestamp="2026/01/02")) + "\n",
     "narratives.jsonl line 1: bad timestamp '2026/01/02'"),
    (json.dumps(dict(EVENT, timestamp=1767225600)) + "\n",
     "narratives.jsonl line 1: timestamp must be an ISO-8601 string"),
    (json.dumps(dict(EVENT, intensity=-0.1)) + "\n",
     "narratives.jsonl line 1: intensity is negative"),
    (json.dumps(dict(EVENT, intensity="high")) + "\n",
     'narratives.jsonl line 1: intensity must be a number, got "high"'),
    (json.dumps(dict(EVENT, intensity=True)) + "\n",
     "narratives.jsonl line 1: intensity must be a number, got true"),
    (json.dumps(dict(EVENT, sentiment=1.5)) + "\n",
     "narratives.jsonl line 1: sentiment 1.5 is outside -1..1"),
    ('{"timestamp": "2026-01-02T00:00:00Z", "narrative_id": "n", "assets": ["A"], '
     '"intensity": NaN, "sentiment": 0}\n', "narratives.jsonl line 1: intensity is not finite"),
    (json.dumps(dict(EVENT, assets=[])) + "\n",
     "narratives.jsonl line 1: assets must be a non-empty list of symbols"),
    (json.dumps(dict(EVENT, assets="AAPL")) + "\n",
     "narratives.jsonl line 1: assets must be a non-empty list of symbols"),
    (json.dumps(dict(EVENT, narrative_id="")) + "\n",
     "narratives.jsonl line 1: narrative_id must be a non-empty string"),
    (json.dumps(dict(EVENT, headline=3)) + "\n",
     "narratives.jsonl line 1: headline must be a string"),
]


@pytest.mark.parametrize(("text", "message"), BAD_NARRATIVES)
def test_bad_narratives_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    d = write(tmp_path, OK_ROW, text)
    with pytest.raises(ReplayError) as err:
        replay.load(d)
    assert message in str(err.value)


def test_missing_files_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="not a directory"):
        replay.load(tmp_path / "nope")
    (tmp_path / "prices.csv").write_text(OK_ROW)
    with pytest.raises(ReplayError, match=r"narratives\.jsonl: no such file"):
        replay.load(tmp_path)
    (tmp_path / "prices.csv").unlink()
    (tmp_path / "narratives.jsonl").write_text("")
    with pytest.raises(ReplayError, match=r"prices\.csv: no such file"):
        replay.load(tmp_path)


def test_timestamps_are_utc() -> None:
    assert replay.parse_timestamp("2026-01-01T00:00:00Z") == 1_767_225_600.0
    assert replay.parse_timestamp("2026-01-01T01:00:00+01:00") == 1_767_225_600.0
    assert replay.parse_timestamp("2026-01-01T00:00:00") == 1_767_225_600.0
    with pytest.raises(ValueError):
        replay.parse_timestamp("01/01/2026")
