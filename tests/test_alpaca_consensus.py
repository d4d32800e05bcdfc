"""`rawe consensus --broker alpaca`: the separate engine sends the collective's order to
Alpaca (the local fake server) with client_order_id = decision id."""

from __future__ import annotations

import time

from rawe_cli.bus import codec
from rawe_cli.models import Bar
from tests.fake_alpaca import FakeAlpaca
from tests.procs import Proc, rawe_json, wait_until


def test_consensus_process_trades_through_alpaca(tmp_path, redis_url, namespace):
    import redis

    with FakeAlpaca() as fake:
        env = {**fake.env(), "RAWE_REDIS_URL": redis_url, "RAWE_NAMESPACE": namespace}
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        now = time.time()
        r.xadd(f"{namespace}:market",
               codec.encode_market(Bar(now, "AAPL", 100.0, 100.0, 100.0, 100.0, 1000)))
        cons = Proc(["consensus", "--no-dashboard", "--broker", "alpaca"],
                    tmp_path / "cons.log", env)
        try:
            cons.wait_for("active:")
            cons.wait_for("reconciled with Alpaca")
            for agent in ("Ann", "Bob", "Cy"):
                rawe_json("inject-signal", "--asset", "AAPL", "--direction", "long",
                          "--agent", agent, "--register", "--json", env=env)
            decision = wait_until(
                lambda: [d for d in rawe_json("decisions", "--json", env=env)
                         if d["status"] == "open"], timeout=20)[0]
            posts = fake.order_posts()
            assert [p["client_order_id"] for p in posts] == [decision["id"]]
            assert posts[0]["symbol"] == "AAPL" and posts[0]["side"] == "buy"
            assert decision["order_status"] == "filled"
            assert decision["avg_price"] > 0 and decision["filled_qty"] > 0
        finally:
            cons.stop()
            r.close()
