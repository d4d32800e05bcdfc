"""The backtest harness: history (or a synthetic world) through the same core as `rawe run`.

Per tick, in the order `rawe run` uses (runtime._one_tick):

1. the regime classifier sees the tick's bars; with ``--scheme regime`` the collective is
   told the regime (``Collective.set_regime``);
2. every bar goes to ``Collective.on_bar`` (marks, exits, counterfactual scoring);
3. ``AgentPool.on_market`` turns bars and narrative events into proposals;
4. each proposal goes to ``Collective.on_proposal`` (consensus, risk, broker, portfolio);
   in `rawe run` the same proposals travel through the Redis stream first: that bus is
   the one thing left out, with the wall clock (time is the tick's timestamp, no sleeps);
5. time exits (``check_exits``) and order polling (``poll_orders``);
6. the equity is sampled, and every weight that changed is recorded with the tick's time.

The narrative engine, agents, consensus engine, weighting schemes, paper broker and
portfolio are the very classes `rawe run` uses.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rawe_cli.app.runtime import REGIME_SCHEMES, AgentPool, make_learner, make_scheme, records_for
from rawe_cli.brokers.base import Broker
from rawe_cli.collective import Collective
from rawe_cli.config import SCHEMES, Personality, Settings
from rawe_cli.core import metrics
from rawe_cli.core.regime import RegimeClassifier, RegimeParams
from rawe_cli.core.sessions import Sessions, is_crypto
from rawe_cli.feeds.base import Tick


@dataclass(slots=True)
class BacktestResult:
    label: str
    scheme: str
    metrics: dict[str, Any]
    agents: list[dict[str, Any]]
    times: list[float]  # one per tick
    equity: list[float]  # initial cash, then one per tick
    weights: dict[str, list[tuple[float, float]]]  # agent -> (time, weight) at each change
    stats: dict[str, Any] = field(default_factory=dict)
    regimes: list[tuple[float, str]] = field(default_factory=list)  # (time, regime) changes
    # agent -> regime -> (time, score) at each change: the learned schemes' per-regime scores
    regime_scores: dict[str, dict[str, list[tuple[float, float]]]] = field(
        default_factory=dict)

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "scheme": self.scheme,
            "metrics": dict(self.metrics),
            "agents": [dict(a) for a in self.agents],
            "stats": dict(self.stats),
        }
        if curves:
            out["equity"] = {"times": list(self.times), "values": list(self.equity[1:])}
            out["weights"] = {k: [list(p) for p in v] for k, v in self.weights.items()}
        return out


def run_backtest(
    ticks: Iterable[Tick],
    settings: Settings,
    personalities: Sequence[Personality],
    *,
    label: str | None = None,
    broker: Broker | None = None,
    regime_params: RegimeParams | None = None,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 500,
    bar_seconds: float | None = None,
    sessions: Sessions | None = None,
) -> BacktestResult:
    """Replay `ticks` through the collective; every input is consumed in order, once.

    `bar_seconds` is the bar size of the data (replay: from its bars); None means the
    settings' (the synthetic world's) bar size. Every duration in bars resolves against it.
    `sessions` (replayed exchange data): no order on an equity while its exchange is closed,
    and equity-only data is annualised by 252 sessions a year.
    """
    from rawe_cli.brokers.paper import PaperBroker

    s = settings
    bar_s = bar_seconds if bar_seconds is not None else s.bar_seconds
    inner: Broker = broker or PaperBroker(fee_bps=s.fee_bps, slippage_bps=s.slippage_bps)
    if sessions is not None:
        from rawe_cli.brokers.sessions import SessionBroker

        inner = SessionBroker(inner, sessions, bar_s)
    col = Collective(s, records_for(personalities), make_scheme(s), inner,
                     learner=make_learner(s, bar_s), bar_seconds=bar_s)
    crypto = False
    pool = AgentPool(list(personalities), s, bar_s)
    classifier = RegimeClassifier(regime_params or RegimeParams())
    use_regime = s.scheme in REGIME_SCHEMES
    proposals_by: dict[str, int] = {name: 0 for name in col.records}
    regime_ticks: dict[str, int] = {}
    weights: dict[str, list[tuple[float, float]]] = {}
    regimes: list[tuple[float, str]] = []
    regime_scores: dict[str, dict[str, list[tuple[float, float]]]] = {}
    times: list[float] = []
    equity: list[float] = [col.portfolio.equity()]
    exposed = 0
    bars = events = proposals = 0
    started = time.perf_counter()
    first = True
    for tick in ticks:
        now = tick.timestamp
        if first:
            for name, rec in col.records.items():
                weights[name] = [(now, rec.weight)]
            first = False
        regime = classifier.update(tick.bars)
        if use_regime:
            col.set_regime(regime)
        key = regime or "-"
        regime_ticks[key] = regime_ticks.get(key, 0) + 1
        if regime and (not regimes or regimes[-1][1] != regime):
            regimes.append((now, regime))
        for bar in tick.bars:
            col.on_bar(bar)
            crypto = crypto or is_crypto(bar.symbol)
        tick_proposals = pool.on_market(tick.bars, tick.events)
        for p in tick_proposals:
            proposals_by[p.agent] = proposals_by.get(p.agent, 0) + 1
            col.on_proposal(p, now)
        col.check_exits(now)
        col.poll_orders(now)
        bars += len(tick.bars)
        events += len(tick.events)
        proposals += len(tick_proposals)
        times.append(now)
        equity.append(col.portfolio.equity())
        if col.portfolio.positions:
            exposed += 1
        changed = col.dirty.agents
        if changed:
            for name in changed:
                w = col.records[name].weight
                hist = weights.setdefault(name, [])
                if not hist or hist[-1][1] != w:
                    hist.append((now, w))
                for reg, score in col.records[name].regime_scores.items():
                    per = regime_scores.setdefault(name, {}).setdefault(reg, [])
                    if not per or per[-1][1] != score:
                        per.append((now, score))
        col.dirty.clear()
        if on_progress is not None and len(times) % progress_every == 0:
            on_progress(len(times))
    elapsed = time.perf_counter() - started
    if on_progress is not None:
        on_progress(len(times))

    scorer = col.learner
    tallies = getattr(scorer, "tallies", {}) if scorer is not None else {}
    agents = []
    for name, rec in col.records.items():
        tally = tallies.get(name)
        agents.append({
            "name": name,
            "personality": rec.personality,
            "proposals": proposals_by.get(name, 0),
            "votes": rec.votes,
            "wins": rec.wins,
            "losses": rec.losses,
            "pnl": rec.pnl,
            "weight": rec.weight,
            "score": rec.score,
            "regime_scores": dict(sorted(rec.regime_scores.items())),
            "scored": tally.scored if tally else 0,
            "counterfactual_return": tally.reward if tally else 0.0,
        })
    pnls = [t.pnl for t in col.closed]
    stats = {
        "ticks": len(times),
        "bars": bars,
        "events": events,
        "signals": pool.signals,
        "proposals": proposals,
        "decisions": len(col.ledger),
        "open_at_end": len(col.portfolio.positions),
        "fees": col.portfolio.fees,
        "regimes_seen": dict(sorted(regime_ticks.items())),
        "start": times[0] if times else None,
        "end": times[-1] if times else None,
        "elapsed_seconds": elapsed,
        "bars_per_second": bars / elapsed if elapsed > 0 else None,
        "bar_seconds": bar_s,
        "calendar": sessions.name if sessions is not None else "24/7",
    }
    if col.meta is not None:
        stats["meta"] = {"candidates": col.meta.candidates, "skipped": col.meta.skipped,
                         "cells": col.meta.table()}
    return BacktestResult(
        label=label or s.scheme,
        scheme=s.scheme,
        metrics=metrics.summarize(equity, times, pnls, exposed, bar_s,
                                  sessions=sessions is not None and not crypto),
        agents=agents,
        times=times,
        equity=equity,
        weights=weights,
        stats=stats,
        regimes=regimes,
        regime_scores=regime_scores,
    )


def alone_settings(settings: Settings) -> Settings:
    """An agent trading alone: one vote is a decision (majority weights, threshold 1)."""
    return dataclasses.replace(settings, scheme="majority", threshold=1.0, threshold_share=None)


def run_compare(
    ticks: Sequence[Tick],
    settings: Settings,
    personalities: Sequence[Personality],
    *,
    schemes: Sequence[str] = SCHEMES,
    alone: bool = True,
    on_run: Callable[[str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    bar_seconds: float | None = None,
    sessions: Sessions | None = None,
) -> list[BacktestResult]:
    """Every scheme, then every agent alone, on the same ticks; best total return first."""
    results: list[BacktestResult] = []
    for scheme in schemes:
        if on_run is not None:
            on_run(f"scheme {scheme}")
        results.append(run_backtest(ticks, dataclasses.replace(settings, scheme=scheme),
                                    personalities, label=f"scheme {scheme}",
                                    on_progress=on_progress, bar_seconds=bar_seconds,
                                    sessions=sessions))
    if alone:
        solo = alone_settings(settings)
        for p in personalities:
            if on_run is not None:
                on_run(f"alone {p.name}")
            results.append(run_backtest(ticks, solo, [p], label=f"alone {p.name}",
                                        on_progress=on_progress, bar_seconds=bar_seconds,
                                        sessions=sessions))
    results.sort(key=lambda r: (-r.metrics["total_return"], r.label))
    return results
