"""`rawe run --broker alpaca`, `--feed alpaca`, the live-trading guards and `rawe doctor`,
in-process, against the fake Alpaca server (alpaca-py underneath, nothing off 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from rawe_cli.config import load_personalities, pick_agents
from rawe_cli.feeds.base import Tick
from rawe_cli.feeds.synthetic import SyntheticFeed

try:
    from fake_alpaca import FakeAlpaca, closed_port_url
    from inproc import rawe
except ImportError:  # tests/ as a package
    from tests.fake_alpaca import FakeAlpaca, closed_port_url
    from tests.inproc import rawe

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("RAWE_REDIS_URL", raising=False)
        monkeypatch.delenv("RAWE_CONFIG", raising=False)
        yield server




def test_run_sends_the_collectives_orders_to_alpaca(
        fake: FakeAlpaca, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # every fill is 0.1% above the one before: the fake's market drifts up
    fills = iter(range(1, 100_000))
    fake.price_fn = lambda symbol: round(100.0 * (1.001 ** next(fills)), 6)
    code, out, err = rawe(capsys, monkeypatch, "run", "--broker", "alpaca", "--feed",
                          "synthetic", "--fast", "--ticks", "400", "--agents", "8", "--json")
    assert code == 0, err
    assert "alpaca paper account PA3FAKE0001" in err
    result = json.loads(out)
    decisions = {d["id"]: d for d in result["decisions"]}
    sent = {o["client_order_id"]: o for o in fake.orders.values()}
    traded = [d for d in decisions.values() if d["status"] in ("open", "closed")]
    assert traded, "the run should trade"
    for d in traded:  # one order per traded decision, id = decision id, fills from Alpaca
        order = sent[d["id"]]
        assert order["symbol"] == d["asset"]
        assert float(order["filled_qty"]) == pytest.approx(d["filled_qty"])
        assert float(order["filled_avg_price"]) == pytest.approx(d["avg_price"])
    assert len(fake.order_posts()) == len(fake.orders)  # nothing sent twice
    # realized P&L is the sum over closed decisions of Alpaca's entry and exit fills
    closed = [d for d in traded if d["status"] == "closed"]
    assert closed
    expected = 0.0
    for d in closed:
        entry, exit_ = sent[d["id"]], sent.get(f"{d['id']}-x") or next(
            o for o in sent.values() if o["client_order_id"] in decisions
            and decisions[o["client_order_id"]]["reason"] == f"closes {d['id']}")
        sign = 1 if d["direction"] == "long" else -1
        qty = float(entry["filled_qty"])
        expected += sign * (float(exit_["filled_avg_price"]) - float(entry["filled_avg_price"])
                            ) * qty
        assert d["pnl"] == pytest.approx(sign * (float(exit_["filled_avg_price"])
                                                 - float(entry["filled_avg_price"])) * qty)
    assert result["portfolio"]["realized_pnl"] == pytest.approx(expected)
    assert result["portfolio"]["fees"] == 0.0
    assert result["broker"]["name"] == "alpaca" and result["broker"]["rejected"] >= 0
    assert result["reconciliation"]["unknown_positions"] == []


def test_a_restart_reconciles_through_rawe_run(
        fake: FakeAlpaca, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = fakeredis.FakeServer()

    async def shared(url: str | None, *, check: bool = True) -> Any:
        return fakeredis.FakeAsyncRedis(server=server, decode_responses=True)

    monkeypatch.setattr("rawe_cli.app.runtime.connect", shared)
    fake.hold = True  # Alpaca accepts the orders and fills nothing (then the engine stops)
    args = ("run", "--broker", "alpaca", "--fast", "--agents", "8", "--json",
            "--redis-url", "redis://stands-for-a-real-one")
    code, out, err = rawe(capsys, monkeypatch, *args, "--ticks", "400")
    assert code == 0, err
    first = json.loads(out)
    pending = [d["id"] for d in first["decisions"] if d["status"] == "pending"]
    assert pending
    fake.release([1.0])  # while it was down, Alpaca filled them
    code, out, err = rawe(capsys, monkeypatch, *args, "--ticks", "1")
    assert code == 0, err
    second = json.loads(out)
    resumed = second["reconciliation"]["resumed"]
    assert sorted(r.split()[0] for r in resumed) == sorted(pending)
    after = {d["id"]: d for d in second["decisions"]}
    for did in pending:  # filled now (at the fake's fixed price, so the next bar may exit)
        assert after[did]["status"] in ("open", "closed")
        assert after[did]["order_status"] == "filled"
        assert after[did]["filled_qty"] == pytest.approx(
            float(next(o for o in fake.orders.values()
                       if o["client_order_id"] == did)["filled_qty"]))
    assert len(fake.order_posts()) == len(fake.orders)


def test_run_on_the_alpaca_poll_feed(fake: FakeAlpaca, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    config = tmp_path / "rawe.yaml"
    config.write_text("symbols: [AAPL, BTC/USD]\ntick_seconds: 0.02\n")
    fake.add_news(7, time.time() - 30, "Apple beats estimates", ["AAPL"])
    code, out, err = rawe(capsys, monkeypatch, "run", "--broker", "alpaca", "--feed",
                          "alpaca-poll", "--ticks", "4", "--json", "-c", str(config))
    assert code == 0, err
    result = json.loads(out)
    assert result["stats"]["ticks"] == 4 and result["stats"]["stopped_by"] == "ticks"
    assert len(fake.requests("GET", "/v2/stocks/bars/latest")) == 1
    assert len(fake.requests("GET", "/v2/stocks/trades/latest")) == 3
    assert len(fake.requests("GET", "/v1beta1/news")) == 4
    assert result["feed"]["polls"] == 4 and result["stats"]["bar_seconds"] == 0.02


async def _market_follows(feed: SyntheticFeed, fake: FakeAlpaca) -> AsyncIterator[Tick]:
    async for tick in feed.ticks():
        for bar in tick.bars:
            fake.prices[bar.symbol] = bar.close
        yield tick


def test_embedded_run_with_a_market_that_follows_the_feed(fake: FakeAlpaca) -> None:
    from rawe_cli.app.runtime import RunOptions, run_embedded, world_params
    from rawe_cli.brokers.factory import make_broker
    from rawe_cli.config import Settings

    settings = Settings()
    feed = SyntheticFeed(world_params(settings), 400, None)

    class Following:
        def ticks(self) -> AsyncIterator[Tick]:
            return _market_follows(feed, fake)

    broker = make_broker("alpaca", settings)
    agents = pick_agents(load_personalities(None), 8, settings.seed)
    result = asyncio.run(run_embedded(RunOptions(settings, agents, ticks=400, fast=True,
                                                 broker=broker, feed=Following())))
    closed = [d for d in result["decisions"] if d["status"] == "closed"]
    assert closed
    # entries were filled at the feed's price of that moment, not at some fixed price
    assert len({round(d["avg_price"], 4) for d in closed}) == len(closed)
    assert result["portfolio"]["realized_pnl"] == pytest.approx(sum(d["pnl"] for d in closed))


# -- guards: one line, exit 1, nothing sent -----------------------------------------------------


@pytest.mark.parametrize(("args", "env", "message", "exit_code"), [
    (("--broker", "alpaca"), {"APCA_API_KEY_ID": ""}, "Alpaca keys missing: set APCA_API_KEY_ID",
     1),
    (("--broker", "alpaca", "--live"), {}, "--live needs a confirmation", 2),
    (("--broker", "alpaca", "--confirm-live"), {}, "--confirm-live goes only with --live", 2),
    (("--broker", "paper", "--live"), {}, "--live needs --broker alpaca", 2),
    (("--broker", "alpaca"), {"APCA_API_BASE_URL": "https://api.alpaca.markets"},
     "points at Alpaca's live endpoint", 1),
    (("--broker", "kraken"), {}, "unknown broker 'kraken'", 2),
    (("--feed", "alpaca", "--fast"), {}, "--fast needs the synthetic feed", 2),
    (("--broker", "alpaca"), {"APCA_API_SECRET_KEY": "wrong"}, "Alpaca rejected the API keys",
     1),
])
def test_guards_are_one_line_errors(fake: FakeAlpaca, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...],
                                    env: dict[str, str], message: str, exit_code: int) -> None:
    """Usage mistakes (flags) exit 2; what the environment or Alpaca refuses exits 1."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    code, out, err = rawe(capsys, monkeypatch, "run", "--ticks", "3", "--json", *args)
    assert code == exit_code
    assert err.count("\n") == 1 and err.startswith("rawe: error: ") and message in err
    assert out == "" and fake.order_posts() == []


def test_live_with_confirm_live_runs(fake: FakeAlpaca, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = rawe(capsys, monkeypatch, "run", "--broker", "alpaca", "--live",
                        "--confirm-live", "--fast", "--ticks", "5", "--json")
    assert code == 0, err
    assert "alpaca LIVE account PA3FAKE0001" in err


def test_live_confirmation_prompt() -> None:
    from rawe_cli.brokers.factory import make_broker
    from rawe_cli.config import Settings
    from rawe_cli.errors import RaweError

    with FakeAlpaca() as server:
        env = server.env()
        asked: list[str] = []
        broker = make_broker("alpaca", Settings(), live=True, env=env,
                             confirm=lambda prompt: asked.append(prompt) or True)
        assert broker.cfg.paper is False
        assert "LIVE trading with real money on Alpaca account PA3FAKE0001" in asked[0]
        assert "$100,000.00" in asked[0]
        with pytest.raises(RaweError, match="not confirmed"):
            make_broker("alpaca", Settings(), live=True, env=env, confirm=lambda _: False)


# -- rawe doctor --------------------------------------------------------------------------------


def test_doctor_all_ok(fake: FakeAlpaca, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    fake.add_news(9, time.time() - 60, "Tesla rallies", ["TSLA"])
    fake.market_open = False
    code, out, _ = rawe(capsys, monkeypatch, "doctor", "--no-redis")
    lines = out.splitlines()
    assert code == 0
    assert [line.split()[0] for line in lines] == ["SKIP", "OK", "OK", "OK", "OK", "OK"]
    assert [line[6:18].strip() for line in lines] == [
        "redis", "alpaca keys", "account", "clock", "market data", "news"]
    assert "PA3FAKE0001 ACTIVE" in lines[2]
    assert "market closed" in lines[3]
    assert "AAPL 100" in lines[4] and "BTC/USD 100" in lines[4]
    assert "Tesla rallies" in lines[5]


def test_doctor_failures(fake: FakeAlpaca, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    redis = closed_port_url().replace("http", "redis")
    code, out, _ = rawe(capsys, monkeypatch, "doctor", "--redis-url", redis)
    assert code == 1
    assert out.splitlines()[0].startswith("FAIL  redis") and "cannot reach Redis" in out
    monkeypatch.delenv("APCA_API_KEY_ID")
    code, out, _ = rawe(capsys, monkeypatch, "doctor", "--no-redis")
    lines = out.splitlines()
    assert code == 1
    assert lines[1].startswith("FAIL  alpaca keys") and "APCA_API_KEY_ID" in lines[1]
    assert all(line.startswith("SKIP") for line in lines[2:])
    monkeypatch.setenv("APCA_API_KEY_ID", "wrong")
    code, out, _ = rawe(capsys, monkeypatch, "doctor", "--no-redis")
    assert code == 1
    assert "FAIL  account" in out and "rejected the API keys" in out
    fake.fail_next("GET", "/v1beta1/news", 500, 500, 500, 500)
    monkeypatch.setenv("APCA_API_KEY_ID", fake.key)
    code, out, _ = rawe(capsys, monkeypatch, "doctor", "--no-redis")
    assert code == 0  # news is optional
    assert "FAIL  news" in out and "(optional)" in out
