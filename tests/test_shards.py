"""Sharded engines: which shard owns an asset, key names, the per-shard budget that keeps the
collective's limits, and the agents' outcomes reaching the collective's tallies exactly once
(docs/sharding.md)."""

from __future__ import annotations

import dataclasses
import zlib

import pytest

from rawe_cli.app.runtime import make_scheme
from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.bus.keys import Keys
from rawe_cli.collective import CLOSED, Collective, LedgerEntry
from rawe_cli.config import Settings
from rawe_cli.core.weighting import AgentRecord, MajorityScheme, apply_closed_trade
from rawe_cli.errors import UsageError
from rawe_cli.models import Bar, ClosedTrade, Decision, Direction, OrderStatus, Proposal
from rawe_cli.shards import (
    Shard,
    budget,
    open_positions_share,
    outcome_increments,
    parse_shard,
    shard_of,
)
from tests.conftest import run_async

# -- which shard owns what -------------------------------------------------------------------


def test_shard_of_is_crc32_of_the_symbol_and_stable() -> None:
    for sym in ("AAPL", "MSFT", "NVDA", "TSLA", "BTC/USD", "ÄÖÜ"):
        assert shard_of(sym, 4) == zlib.crc32(sym.encode()) % 4
    assert [shard_of(s, 2) for s in ("AAPL", "MSFT", "NVDA", "TSLA")] == [
        zlib.crc32(s.encode()) % 2 for s in ("AAPL", "MSFT", "NVDA", "TSLA")]
    assert shard_of("AAPL", 1) == 0
    owners = {shard_of(f"S{i}", 3) for i in range(50)}
    assert owners == {0, 1, 2}  # every shard owns something


@pytest.mark.parametrize("text,want", [("0/2", Shard(0, 2)), ("1/2", Shard(1, 2)),
                                       (" 3 / 4 ", Shard(3, 4)), ("0/1", Shard(0, 1))])
def test_parse_shard(text: str, want: Shard) -> None:
    assert parse_shard(text) == want


@pytest.mark.parametrize("text,needle", [("2/2", "0-based"), ("1", "expected K/N"),
                                         ("a/b", "expected K/N"), ("0/0", "N must be 1"),
                                         ("-1/2", "expected K/N"), ("0/999", "N must be 1")])
def test_bad_shard_is_a_usage_error(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_shard(text)


def test_keys_carry_hash_tags_and_unsharded_names_stay() -> None:
    legacy = Keys("rawe")
    assert legacy.proposals == "rawe:proposals" and legacy.agents == "rawe:agents"
    assert legacy.registry == "rawe:agents" and legacy.market == "rawe:market"
    k = Keys("rawe", 4, 2)
    assert k.proposals == "{rawe:2of4}:proposals"
    assert k.seen_bucket(7).startswith("{rawe:2of4}:")
    for name in ("lease", "fence", "fence_epoch", "marker", "seen_proposals", "seen_buckets",
                 "decisions",
                 "positions", "portfolio", "agents", "dead_letter", "outbox"):
        assert getattr(k, name).startswith("{rawe:2of4}:"), name
    for name in ("registry", "tally", "tally_applied", "market", "shard_count"):
        assert getattr(k, name).startswith("{rawe}:"), name
    assert [x.shard for x in Keys("rawe", 3).all_shards()] == [0, 1, 2]
    assert Keys("rawe", 2).for_asset("AAPL").shard == shard_of("AAPL", 2)
    with pytest.raises(ValueError):
        _ = Keys("rawe", 2).proposals  # the whole collective has no proposals stream


def test_open_positions_shares_add_up() -> None:
    for total in (1, 2, 7, 10, 11):
        for n in range(1, total + 1):
            assert sum(open_positions_share(total, Shard(k, n)) for k in range(n)) == total
    with pytest.raises(UsageError, match="cannot be split"):
        budget(Settings(max_open_positions=3), Shard(0, 4))


def test_outcome_increments_are_what_apply_closed_trade_credits() -> None:
    for pnl in (125.5, -40.25):
        records = {n: AgentRecord(n, "p") for n in ("A", "B", "C")}
        trade = ClosedTrade("d-1", "AAPL", Direction.LONG, 1.0, 10.0, 11.0, 0.1, pnl, 0.0,
                            1.0, "horizon", ("A", "B"), ("C",), (2.0, 1.0))
        apply_closed_trade(records, trade, MajorityScheme(), 1.0)
        inc = outcome_increments(("A", "B"), (2.0, 1.0), ("C",), pnl)
        for n, rec in records.items():
            assert rec.wins == inc.get(f"wins:{n}", 0)
            assert rec.losses == inc.get(f"losses:{n}", 0)
            assert rec.pnl == pytest.approx(inc.get(f"pnl:{n}", 0.0))


# -- the collective's limits hold across shards ------------------------------------------------


def _book(settings: Settings, shard: Shard | None) -> Collective:
    s = budget(settings, shard) if shard else settings
    col = Collective(s, {"A": AgentRecord("A", "t")}, make_scheme(s),
                     PaperBroker(fee_bps=s.fee_bps, slippage_bps=s.slippage_bps))
    if shard:
        col.limits = dataclasses.replace(col.limits, equity_scale=float(shard.count))
    return col


def _trade_everything(col: Collective, symbols: list[str], size: float) -> None:
    for i, sym in enumerate(symbols):
        col.on_bar(Bar(float(i), sym, 100.0, 100.0, 100.0, 100.0))
        col.on_proposal(Proposal(f"p-{sym}", "A", sym, Direction.LONG if i % 2 else
                                 Direction.SHORT, size, 0.0, 0.5, "n", "manual", float(i)),
                        float(i))


@pytest.mark.parametrize("size", [0.01, 0.25])  # the position count binds; the gross binds
def test_two_shards_keep_the_collective_limits(size: float) -> None:
    # no costs, so that the gross limit is met exactly (with fees, equity dips under
    # 100k and each 50k budget takes one position fewer than the shared headroom would:
    # the price of budgets, docs/sharding.md)
    settings = Settings(scheme="majority", threshold=1.0, max_open_positions=10,
                        max_gross_exposure=1.5, initial_cash=100_000.0, fee_bps=0.0,
                        slippage_bps=0.0)
    symbols = [f"S{i}" for i in range(60)]
    shards = [Shard(0, 2), Shard(1, 2)]
    books = [_book(settings, sh) for sh in shards]
    for sh, col in zip(shards, books, strict=True):
        _trade_everything(col, [s for s in symbols if sh.owns(s)], size)
    one = _book(settings, None)
    _trade_everything(one, symbols, size)

    positions = [p for col in books for p in col.portfolio.positions.values()]
    assert sum(col.portfolio.initial_cash for col in books) == settings.initial_cash
    assert len(positions) <= settings.max_open_positions
    gross = sum(col.portfolio.gross_exposure() for col in books)
    equity = sum(col.portfolio.equity() for col in books)
    assert gross <= settings.max_gross_exposure * equity
    for col in books:  # neither shard trades an asset of the other's
        assert all(Shard(books.index(col), 2).owns(a) for a in col.portfolio.positions)
    # sizes stay fractions of the collective's equity: a position is as large as unsharded
    ours = sorted(round(p.qty * p.entry_price) for p in positions)
    theirs = sorted(round(p.qty * p.entry_price) for p in one.portfolio.positions.values())
    assert ours[0] == pytest.approx(theirs[0], rel=0.01)
    if size == 0.01:  # the position count binds: both take exactly the limit
        assert len(positions) == len(one.portfolio.positions) == 10
    else:  # the gross exposure binds: 3 x 25k per 50k shard, 6 in all, as one book of 100k
        assert len(positions) == len(one.portfolio.positions) == 6


# -- outcomes reach the collective's tallies exactly once (a real Redis) ----------------------


def _closed(col: Collective, did: str, asset: str, agents: tuple[str, ...],
            opponents: tuple[str, ...], pnl: float) -> None:
    d = Decision(did, 100.0, asset, Direction.LONG, 0.05, 2.0, 1.0, 1.0, agents, opponents,
                 (f"{did}-p",), 60.0, 0.02, 0.04, weights=(1.0,) * len(agents))
    col.ledger[did] = LedgerEntry(d, CLOSED, OrderStatus.FILLED, 1.0, 10.0, pnl=pnl,
                                  closed_at=200.0)
    col.dirty.decisions.add(did)


def test_outcomes_of_two_shards_add_up_once(redis_url: str, namespace: str) -> None:
    from rawe_cli.bus.store import Store, shard_layout
    from rawe_cli.bus.streams import connect

    async def go() -> None:
        client = await connect(redis_url)
        try:
            whole = await shard_layout(client, namespace, 2)
            await Store(client, whole).register_agents(
                [AgentRecord(n, "p") for n in ("A", "B", "C")])
            settings = Settings(scheme="winrate")
            stores, cols = [], []
            for k in whole.all_shards():
                store = Store(client, k)
                col = Collective(settings, {}, make_scheme(settings), PaperBroker())
                await store.restore(col)
                stores.append(store)
                cols.append(col)
            _closed(cols[0], "d-0a", "AAPL", ("A", "B"), ("C",), 30.0)
            _closed(cols[0], "d-0b", "AAPL", ("A",), (), -10.0)
            _closed(cols[1], "d-1a", "MSFT", ("A", "C"), ("B",), 50.0)
            for store, col in zip(stores, cols, strict=True):
                await store.save(col)
            # shard 1 "crashes" after adding its outcomes, before emptying its outbox
            real_srem = client.srem

            async def crash(*_a: object) -> None:
                raise ConnectionError("killed")

            client.srem = crash
            with pytest.raises(ConnectionError):
                await stores[1].flush_outcomes(1000.0, 3600.0)
            client.srem = real_srem
            assert await client.scard(whole.of(1).outbox) == 1  # still there
            assert await stores[0].flush_outcomes(1000.0, 3600.0) == 2
            # the restarted shard 1 finds its outbox, and the tallies know the id: nothing
            # is added twice
            again = Store(client, whole.of(1))
            col1 = Collective(settings, {}, make_scheme(settings), PaperBroker())
            await again.restore(col1)
            assert await again.flush_outcomes(1001.0, 3600.0) == 0
            assert await client.scard(whole.of(1).outbox) == 0
            # a second save of a closed entry (e.g. written back) adds nothing either
            cols[0].dirty.decisions.add("d-0a")
            await stores[0].save(cols[0])
            assert await stores[0].flush_outcomes(1002.0, 3600.0) == 0

            got = await Store(client, whole.of(0)).agents()
            assert (got["A"].wins, got["A"].losses) == (2, 1)
            assert got["A"].pnl == pytest.approx(15.0 - 10.0 + 25.0)
            assert (got["B"].wins, got["B"].losses) == (1, 1)  # won d-0a, opposed d-1a
            assert got["B"].pnl == pytest.approx(15.0)
            assert (got["C"].wins, got["C"].losses) == (1, 1)  # opposed d-0a, won d-1a
            assert got["C"].pnl == pytest.approx(25.0)
            assert got["A"].updated == 200.0
            # the shard that restarted sees the same, every shard's outcomes
            assert (col1.records["A"].wins, col1.records["A"].losses) == (2, 1)
        finally:
            for key in await client.keys(f"{{{namespace}*"):
                await client.delete(key)
            await client.aclose()

    run_async(go())


def test_shard_counts_must_agree(redis_url: str, namespace: str) -> None:
    from rawe_cli.bus.store import shard_layout
    from rawe_cli.bus.streams import connect
    from rawe_cli.errors import RaweError

    async def go() -> None:
        client = await connect(redis_url)
        try:
            assert not (await shard_layout(client, namespace, 0)).sharded  # nothing recorded
            assert (await shard_layout(client, namespace, 2)).shards == 2  # records 2
            assert (await shard_layout(client, namespace, 0)).shards == 2  # a reader takes it
            with pytest.raises(RaweError, match=r"has 2 shards.*told 3"):
                await shard_layout(client, namespace, 3)
            with pytest.raises(RaweError, match=r"start each engine with --shard K/2"):
                await shard_layout(client, namespace, 0, engine=True)
            other = namespace + "-legacy"
            await client.set(f"{other}:state-marker", "m-1")
            with pytest.raises(RaweError, match="holds an unsharded collective"):
                await shard_layout(client, other, 2)
            await client.delete(f"{other}:state-marker")
        finally:
            for key in await client.keys(f"{{{namespace}*"):
                await client.delete(key)
            await client.aclose()

    run_async(go())
