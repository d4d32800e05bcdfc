"""`rawe data download` against the fake Alpaca (the real alpaca-py clients, paged
answers), then `rawe backtest` and `rawe tune` on the result; resume; one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rawe_cli.feeds import replay

try:
    from fake_alpaca import FakeAlpaca
    from inproc import rawe
except ImportError:  # tests/ as a package
    from tests.fake_alpaca import FakeAlpaca
    from tests.inproc import rawe

pytestmark = pytest.mark.timeout(120)
STOCKS, CRYPTO, NEWS = "/v2/stocks/bars", "/v1beta3/crypto/us/bars", "/v1beta1/news"


def t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        server.page_size = 400  # several pages a request: the SDK must follow the tokens
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("RAWE_CONFIG", raising=False)
        server.add_news(1, t("2025-01-06T15:00"), "Apple beats estimates, raises outlook",
                        ["AAPL"])
        server.add_news(2, t("2025-01-06T16:10"), "Apple earnings beat estimates as iPhone "
                        "sales rise", ["AAPL"])
        server.add_news(3, t("2025-01-07T16:00"), "Bitcoin slides as ETF outflows mount",
                        ["BTCUSD"])
        server.add_news(4, t("2025-01-08T15:00"), "Tesla recall widens", ["TSLA"])  # not ours
        server.add_news(5, t("2025-01-15T15:00"), "Microsoft lifts cloud guidance", ["MSFT"])
        yield server




def download(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, out: Path,
             *extra: str, end: str = "2025-01-10", start: str = "2025-01-01",
             symbols: str = "AAPL,MSFT,BTC/USD") -> tuple[int, str, str]:
    return rawe(capsys, monkeypatch, "data", "download", "--symbols", symbols, "--timeframe",
                "5Min", "--start", start, "--end", end, "--out", str(out), *extra)


def last_line(err: str) -> str:
    """The error line (a progress line may come before it on a non-terminal stderr)."""
    assert "Traceback" not in err
    return err.splitlines()[-1]


def _requested_start(body: dict[str, str]) -> float:
    return datetime.fromisoformat(body["start"]).timestamp()


def test_download_pages_resumes_and_replays(fake: FakeAlpaca, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lab"
    code, text, err = download(capsys, monkeypatch, out, "--news")
    assert code == 0, err
    stock_calls, crypto_calls = fake.requests("GET", STOCKS), fake.requests("GET", CRYPTO)
    assert any("page_token" in q for q in stock_calls)  # pagination was followed
    assert any("page_token" in q for q in crypto_calls)
    assert all(q["feed"] == "iex" and q["timeframe"] == "5Min" for q in stock_calls)
    data = replay.load(out)
    per = {s: sum(1 for tk in data.ticks for b in tk.bars if b.symbol == s)
           for s in data.symbols}
    # Jan 2, 3, 6, 7, 8, 10 are sessions (Jan 9: a day of mourning), 78 bars of 5 minutes
    # each; the fake's extended-hours bars are dropped; crypto has every bar of the 10 days
    # (--end is included)
    assert per == {"AAPL": 6 * 78, "MSFT": 6 * 78, "BTC/USD": 10 * 288}
    assert data.calendar == "NYSE" and data.bar_seconds == 300.0
    stamps = {b.timestamp for tk in data.ticks for b in tk.bars if b.symbol == "AAPL"}
    assert t("2025-01-02T14:30") in stamps and t("2025-01-02T21:00") not in stamps
    assert not any(t("2025-01-09") <= s < t("2025-01-10") for s in stamps)
    lines = [json.loads(x) for x in (out / "narratives.jsonl").read_text().splitlines()]
    assert [e["headline"][:5] for e in lines] == ["Apple", "Apple", "Bitco"]  # Tesla: not ours
    assert lines[0]["narrative_id"] == lines[1]["narrative_id"]  # one story thread
    assert lines[1]["intensity"] > lines[0]["intensity"] and lines[0]["sentiment"] > 0
    assert lines[2]["assets"] == ["BTC/USD"] and lines[2]["sentiment"] < 0
    assert "fetched" in text and "AAPL 468" in text

    # a second run over a longer range asks only for what is missing
    before = {p: len(fake.requests("GET", p)) for p in (STOCKS, CRYPTO, NEWS)}
    code, text, err = download(capsys, monkeypatch, out, "--news", end="2025-01-17")
    assert code == 0, err
    for path in (STOCKS, CRYPTO, NEWS):
        new = fake.requests("GET", path)[before[path]:]
        assert new, path
        assert all(_requested_start(q) >= t("2025-01-11") for q in new if "start" in q), path
    data = replay.load(out)
    aapl = sum(1 for tk in data.ticks for b in tk.bars if b.symbol == "AAPL")
    assert aapl == 6 * 78 + 5 * 78  # Jan 13-17 added, nothing twice
    assert "Microsoft" in (out / "narratives.jsonl").read_text()

    # the same range again: nothing to fetch, not one request
    total = len(fake.log)
    code, text, err = download(capsys, monkeypatch, out, "--news", end="2025-01-17")
    assert code == 0, err
    assert len(fake.log) == total and "up to date" in text

    # the lab reads the directory unchanged
    code, text, err = rawe(capsys, monkeypatch, "backtest", "--data", str(out), "--json")
    assert code == 0, err
    report = json.loads(text)
    assert report["source"]["calendar"] == "NYSE"
    assert report["source"]["bars"] == data.bars and report["source"]["events"] == 4
    code, text, err = rawe(capsys, monkeypatch, "tune", "--data", str(out), "--trials", "2",
                           "--workers", "1", "--out", str(tmp_path / "tuned.yaml"), "--json")
    assert code == 0, err


def test_an_equity_only_download_is_annualised_by_252_sessions(
        fake: FakeAlpaca, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "daily"
    code, _, err = rawe(capsys, monkeypatch, "data", "download", "--symbols", "AAPL",
                        "--timeframe", "1Day", "--start", "2025-01-01", "--end", "2025-03-31",
                        "--out", str(out))
    assert code == 0, err
    assert replay.load(out).calendar == "NYSE"
    (out / "narratives.jsonl").write_text(json.dumps({
        "timestamp": "2025-01-06T15:00:00Z", "narrative_id": "n", "assets": ["AAPL"],
        "intensity": 1.0, "sentiment": 0.5}) + "\n")
    code, text, err = rawe(capsys, monkeypatch, "backtest", "--data", str(out), "--json")
    assert code == 0, err
    assert json.loads(text)["metrics"]["periods_per_year"] == 252.0


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--symbols", "AA PL"), 2, "--symbols: 'AA PL' is not a stock ticker"),
    (("--start", "2025-02-01", "--end", "2025-01-01"), 2, "must be before --end"),
    (("--start", "2025-01-04", "--end", "2025-01-05", "--symbols", "AAPL"), 2,
     "holds no NYSE session"),
    (("--timeframe", "7Min"), 2, "--timeframe '7Min': choose one of"),
    (("--feed", "otc"), 2, "--feed 'otc': choose iex or sip"),
    (("--start", "yesterday"), 2, "--start 'yesterday' is not a date"),
])
def test_bad_input_is_one_line_and_fetches_nothing(
        fake: FakeAlpaca, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], code: int, message: str
        ) -> None:
    opts = {"--symbols": "AAPL,BTC/USD", "--timeframe": "5Min", "--start": "2025-01-01",
            "--end": "2025-01-10", "--feed": "iex"}
    opts.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["data", "download", "--out", str(tmp_path / "x")]
    for k, v in opts.items():
        argv += [k, v]
    got, out, err = rawe(capsys, monkeypatch, *argv)
    assert got == code and out == ""
    assert err.startswith("rawe: error: ") and message in err and err.count("\n") == 1, err
    assert fake.log == [] and not (tmp_path / "x").exists()


def test_a_symbol_alpaca_has_no_bars_for_is_a_runtime_error(
        fake: FakeAlpaca, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake.no_data = {"ZZZZ"}
    code, _, err = download(capsys, monkeypatch, tmp_path / "z", symbols="AAPL,ZZZZ")
    assert code == 1 and "Traceback" not in err
    assert last_line(err).startswith("rawe: error: Alpaca has no 5Min bars for ZZZZ from "
                                     "2025-01-01"), err
    assert replay.load(tmp_path / "z").symbols == ("AAPL",)  # what came is kept, valid


def test_keys_refused_and_a_server_failure_are_one_line(
        fake: FakeAlpaca, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_SECRET_KEY", "wrong")
    code, _, err = download(capsys, monkeypatch, tmp_path / "k", symbols="AAPL")
    assert code == 1 and "refused the request" in last_line(err), err
    monkeypatch.setenv("APCA_API_SECRET_KEY", fake.secret)
    fake.fail_next("GET", STOCKS, 500, 500, 500, 500, 500)
    code, _, err = download(capsys, monkeypatch, tmp_path / "k", symbols="AAPL")
    assert code == 1 and "run the command again to resume" in last_line(err), err


def test_another_timeframe_in_the_same_directory_is_refused(
        fake: FakeAlpaca, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "one"
    assert download(capsys, monkeypatch, out, symbols="BTC/USD", end="2025-01-02")[0] == 0
    code, _, err = rawe(capsys, monkeypatch, "data", "download", "--symbols", "BTC/USD",
                        "--timeframe", "1Hour", "--start", "2025-01-01", "--end", "2025-01-02",
                        "--out", str(out))
    assert code == 2 and "holds 5Min bars" in err
