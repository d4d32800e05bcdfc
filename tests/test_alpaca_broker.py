"""AlpacaBroker driven through the real alpaca-py TradingClient against the fake server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rawe_cli.brokers.alpaca import AlpacaBroker, AlpacaConfig, config_from_env
from rawe_cli.errors import BrokerError, RaweError
from rawe_cli.models import Order, OrderStatus, Side

try:
    from fake_alpaca import FakeAlpaca, closed_port_url
except ImportError:  # tests/ as a package
    from tests.fake_alpaca import FakeAlpaca, closed_port_url

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        server.prices.update({"AAPL": 200.0, "MSFT": 400.0, "BTC/USD": 50_000.0})
        yield server


def make(fake: FakeAlpaca, url: str | None = None, **kw: object
         ) -> tuple[AlpacaBroker, list[float]]:
    waits: list[float] = []
    cfg = AlpacaConfig(fake.key, fake.secret, trading_url=url or fake.url, sdk_retry_wait=0,
                       backoff=0.01, **kw)  # type: ignore[arg-type]
    return AlpacaBroker(cfg, sleep=waits.append), waits


def order(coid: str = "d-1", asset: str = "AAPL", side: Side = Side.BUY, qty: float = 2.5,
          purpose: str = "open") -> Order:
    return Order(coid, coid.removesuffix("-x"), asset, side, qty, 200.0, purpose, 0.0)


def test_submission_fills_with_the_decision_id_as_client_order_id(fake: FakeAlpaca) -> None:
    broker, _ = make(fake)
    update = broker.submit(order("d-abc", qty=2.5))
    assert update.status is OrderStatus.FILLED
    assert update.filled_qty == pytest.approx(2.5)
    assert update.avg_price == pytest.approx(200.0)
    assert update.fee == 0.0
    [posted] = fake.order_posts()
    assert posted["client_order_id"] == "d-abc"
    assert posted["type"] == "market" and posted["time_in_force"] == "day"
    assert float(posted["qty"]) == pytest.approx(2.5)
    assert fake.positions["AAPL"]["qty"] == pytest.approx(2.5)


def test_fill_arrives_on_a_later_poll(fake: FakeAlpaca) -> None:
    fake.fill_plan = [0.0, 1.0]
    broker, _ = make(fake)
    first = broker.submit(order("d-2"))
    assert first.status is OrderStatus.SUBMITTED and first.filled_qty == 0
    later = broker.poll("d-2")
    assert later.status is OrderStatus.FILLED
    assert later.filled_qty == pytest.approx(2.5)
    # a final order is not asked about again
    gets = len(fake.requests("GET", "/v2/orders:by_client_order_id"))
    assert broker.poll("d-2") == later
    assert len(fake.requests("GET", "/v2/orders:by_client_order_id")) == gets


def test_partial_fill_then_filled_then_partial_and_canceled(fake: FakeAlpaca) -> None:
    fake.fill_plan = [0.4, 1.0]
    broker, _ = make(fake)
    part = broker.submit(order("d-3", qty=10))
    assert part.status is OrderStatus.PARTIALLY_FILLED
    assert part.filled_qty == pytest.approx(4.0)
    fake.prices["AAPL"] = 210.0
    done = broker.poll("d-3")
    assert done.status is OrderStatus.FILLED
    assert done.filled_qty == pytest.approx(10.0)
    assert done.avg_price == pytest.approx((4 * 200 + 6 * 210) / 10)  # cumulative average

    fake.fill_plan = [0.5]
    broker.submit(order("d-4", asset="MSFT", qty=4))
    canceled = broker.poll("d-4")
    assert canceled.status is OrderStatus.CANCELED
    assert canceled.filled_qty == pytest.approx(2.0)
    assert "canceled" in canceled.reason


def test_duplicate_client_order_id_is_recovered_not_sent_twice(fake: FakeAlpaca) -> None:
    fake.add_order("AAPL", "buy", 2.5, "d-dup")  # sent before a crash, say
    broker, _ = make(fake)
    update = broker.submit(order("d-dup"))
    assert update.status is OrderStatus.FILLED
    assert broker.stats.recovered == 1
    assert len(fake.orders) == 1
    assert update.broker_order_id == next(iter(fake.orders))
    # the collective re-submitting the same id gets the same order, no new POST
    posts = len(fake.order_posts())
    assert broker.submit(order("d-dup")).status is OrderStatus.REJECTED  # final: never again
    assert len(fake.order_posts()) == posts


def test_403_insufficient_buying_power_is_a_recorded_rejection(fake: FakeAlpaca) -> None:
    fake.buying_power = 100.0
    broker, _ = make(fake)
    update = broker.submit(order("d-poor", qty=3))
    assert update.status is OrderStatus.REJECTED
    assert "403" in update.reason and "insufficient buying power" in update.reason
    assert fake.orders == {}
    # it checked that the 403 was not its own earlier order
    assert fake.requests("GET", "/v2/orders:by_client_order_id")[-1] == {
        "client_order_id": "d-poor"}
    # and the next order goes through
    fake.buying_power = 1e9
    assert broker.submit(order("d-next")).status is OrderStatus.FILLED


def test_422_rejection_is_recorded(fake: FakeAlpaca) -> None:
    fake.fail_next("POST", "/v2/orders", 422,
                   body={"code": 40010001, "message": "asset AAPL is not tradable"})
    broker, _ = make(fake)
    update = broker.submit(order("d-422"))
    assert update.status is OrderStatus.REJECTED
    assert "422" in update.reason and "not tradable" in update.reason
    assert fake.orders == {}


def test_429_then_success_is_retried_by_the_sdk(fake: FakeAlpaca) -> None:
    fake.fail_next("POST", "/v2/orders", 429)
    broker, waits = make(fake)
    update = broker.submit(order("d-429"))
    assert update.status is OrderStatus.FILLED
    assert len(fake.order_posts()) == 2  # alpaca-py re-sent the POST itself
    assert len(fake.orders) == 1
    assert waits == [] and broker.stats.retries == 0


def test_504_after_the_order_was_created_is_recovered(fake: FakeAlpaca) -> None:
    # the gateway timed out but the order exists; alpaca-py re-POSTs, Alpaca says 422
    # duplicate, the broker finds the order by client_order_id: one order, not two
    fake.fail_next("POST", "/v2/orders", 504, apply=True)
    broker, _ = make(fake)
    update = broker.submit(order("d-504"))
    assert update.status is OrderStatus.FILLED
    assert len(fake.order_posts()) == 2
    assert len(fake.orders) == 1
    assert broker.stats.recovered == 1


def test_504_then_success(fake: FakeAlpaca) -> None:
    fake.fail_next("POST", "/v2/orders", 504)
    broker, _ = make(fake)
    assert broker.submit(order("d-504b")).status is OrderStatus.FILLED
    assert len(fake.orders) == 1 and broker.stats.recovered == 0


def test_500_backs_off_and_retries_with_the_same_id(fake: FakeAlpaca) -> None:
    fake.fail_next("POST", "/v2/orders", 500, 500)
    broker, waits = make(fake)
    update = broker.submit(order("d-500"))
    assert update.status is OrderStatus.FILLED
    posts = fake.order_posts()
    assert len(posts) == 3 and {p["client_order_id"] for p in posts} == {"d-500"}
    assert waits == [0.01, 0.02]  # doubling back-off
    assert broker.stats.retries == 2


def test_500_after_creation_then_duplicate_is_recovered(fake: FakeAlpaca) -> None:
    fake.fail_next("POST", "/v2/orders", 500, apply=True)
    broker, _ = make(fake)
    assert broker.submit(order("d-500c")).status is OrderStatus.FILLED
    assert len(fake.orders) == 1 and broker.stats.recovered == 1


def test_500_until_attempts_run_out_stays_pending_then_resubmits(fake: FakeAlpaca) -> None:
    fake.fail_next("POST", "/v2/orders", 500, 500, 500)
    broker, waits = make(fake, attempts=3)
    update = broker.submit(order("d-down"))
    assert update.status is OrderStatus.SUBMITTED
    assert "not confirmed after 3 attempts" in update.reason
    assert fake.orders == {} and waits == [0.01, 0.02]
    # next poll: Alpaca has never seen it -> sent again, same id
    later = broker.poll("d-down")
    assert later.status is OrderStatus.FILLED
    assert broker.stats.resubmitted == 1
    assert len(fake.orders) == 1


def test_connection_refused_backs_off_and_is_not_a_crash(fake: FakeAlpaca) -> None:
    broker, waits = make(fake, url=closed_port_url(), attempts=3)
    update = broker.submit(order("d-refused"))
    assert update.status is OrderStatus.SUBMITTED
    assert "ConnectionError" in update.reason
    assert len(waits) == 2
    assert broker.can_trade("AAPL", 0.0).startswith("market clock unavailable")
    with pytest.raises(BrokerError, match="cannot reach Alpaca"):
        broker.check_account()


def test_market_closed_blocks_equities_not_crypto_and_clock_is_cached(
        fake: FakeAlpaca) -> None:
    fake.market_open = False
    broker, _ = make(fake)
    assert broker.can_trade("AAPL", 0.0).startswith("market closed (opens ")
    assert broker.can_trade("MSFT", 0.0).startswith("market closed")
    assert broker.can_trade("BTC/USD", 0.0) == ""
    assert len(fake.requests("GET", "/v2/clock")) == 1
    fake.market_open = True
    broker._clock = None  # the cache expires after clock_ttl seconds
    assert broker.can_trade("AAPL", 0.0) == ""


def test_quantities_follow_alpaca_rules(fake: FakeAlpaca) -> None:
    broker, _ = make(fake)
    assert broker.submit(order("d-c", asset="BTC/USD", qty=0.0123456789123)).status \
        is OrderStatus.FILLED
    assert fake.order_posts()[-1]["time_in_force"] == "gtc"
    assert float(fake.order_posts()[-1]["qty"]) == pytest.approx(0.012345678)
    short = broker.submit(order("d-s", side=Side.SELL, qty=3.7))  # short sale: whole shares
    assert short.filled_qty == pytest.approx(3.0)
    tiny = broker.submit(order("d-t", side=Side.SELL, qty=0.4))
    assert tiny.status is OrderStatus.REJECTED and "rounds to 0" in tiny.reason
    crypto_short = broker.submit(order("d-cs", asset="BTC/USD", side=Side.SELL, qty=0.1))
    assert crypto_short.status is OrderStatus.REJECTED and "short" in crypto_short.reason
    assert {p["client_order_id"] for p in fake.order_posts()} == {"d-c", "d-s"}
    fake.fractionable = False
    broker2, _ = make(fake)
    assert broker2.submit(order("d-w", asset="MSFT", qty=2.9)).filled_qty == pytest.approx(2.0)


def test_rejected_keys_are_one_line_errors(fake: FakeAlpaca) -> None:
    cfg = AlpacaConfig("wrong", "keys", trading_url=fake.url, sdk_retry_wait=0, backoff=0)
    broker = AlpacaBroker(cfg)
    with pytest.raises(BrokerError, match="Alpaca rejected the API keys") as err:
        broker.check_account()
    assert "\n" not in str(err.value)
    with pytest.raises(BrokerError, match="rejected the API keys"):
        broker.submit(order("d-k"))


def test_blocked_account_is_refused(fake: FakeAlpaca) -> None:
    fake.account_status = "ACCOUNT_CLOSED"
    broker, _ = make(fake)
    with pytest.raises(BrokerError, match="ACCOUNT_CLOSED"):
        broker.check_account()


def test_config_from_env_safety() -> None:
    with pytest.raises(RaweError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        config_from_env({})
    with pytest.raises(RaweError, match="APCA_API_SECRET_KEY"):
        config_from_env({"APCA_API_KEY_ID": "k"})
    keys = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    cfg = config_from_env(keys)
    assert cfg.paper and cfg.endpoint == "https://paper-api.alpaca.markets"
    assert config_from_env(keys, live=True).endpoint == "https://api.alpaca.markets"
    with pytest.raises(RaweError, match="pass --live"):
        config_from_env({**keys, "APCA_API_BASE_URL": "https://api.alpaca.markets/v2"})
    with pytest.raises(RaweError, match="paper endpoint"):
        config_from_env({**keys, "APCA_API_BASE_URL": "https://paper-api.alpaca.markets"},
                        live=True)
    cfg = config_from_env({**keys, "APCA_API_BASE_URL": "http://127.0.0.1:9/v2/",
                           "APCA_API_DATA_URL": "http://127.0.0.1:8"})
    assert cfg.trading_url == "http://127.0.0.1:9" and cfg.data_url == "http://127.0.0.1:8"
    with pytest.raises(RaweError, match="not an http"):
        config_from_env({**keys, "APCA_API_DATA_URL": "data.alpaca.markets"})
    with pytest.raises(RaweError, match="RAWE_ALPACA_BACKOFF"):
        config_from_env({**keys, "RAWE_ALPACA_BACKOFF": "soon"})
