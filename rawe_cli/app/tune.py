"""Walk-forward calibration (`rawe tune`): search personalities and collective settings on
the first part of the data, then report them on the part the search never saw.

* ``split_ticks``: the ticks in time order, cut at ``train_fraction``; the search gets the
  train part only (the test part is not even handed to its worker processes);
* ``search``: an optuna study (seeded TPE), trials asked in batches of ``workers``,
  evaluated in parallel, told in trial order: same seed and worker count, same study;
* ``tune``: the search, then the best parameters on train (from their trial) and on test,
  and the untuned starting parameters on both, for comparison;
* ``write_outputs``: the tuned personalities (and settings) as YAML files that
  ``load_personalities`` and ``load_settings`` read, written atomically.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rawe_cli.app.backtest import run_backtest
from rawe_cli.config import SETTINGS_FIELDS, Personality, Settings
from rawe_cli.core.sessions import Sessions
from rawe_cli.durations import Duration, bars, format_seconds
from rawe_cli.errors import RaweError, UsageError
from rawe_cli.feeds.base import Tick
from rawe_cli.levels import VOL, Level

MIN_PART_TICKS = 50  # least ticks in each part of the split
DEFAULT_MIN_TRADES = 20
TRAIN, TEST = "train", "test"


# -- the search space ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Knob:
    """One searched field: a float (on a grid of `step`), an int, or a choice."""

    field: str
    kind: str  # "float" | "int" | "choice"
    low: float = 0.0
    high: float = 1.0
    step: float | None = None
    log: bool = False
    unit: str = ""  # "bars": a Duration in bars; "vol": a Level in noise units
    choices: tuple[str, ...] = ()


AGENT_KNOBS: tuple[Knob, ...] = (
    Knob("stance", "choice", choices=("follow", "fade")),
    Knob("min_strength", "float", 0.0, 0.95, step=0.05),
    Knob("min_confidence", "float", 0.0, 0.95, step=0.05),
    Knob("holding_horizon", "int", 4, 800, log=True, unit="bars"),
    Knob("stop_loss", "float", 1.0, 8.0, step=0.25, unit="vol"),
    Knob("take_profit", "float", 1.0, 8.0, step=0.25, unit="vol"),
    Knob("position_size", "float", 0.01, 0.20, step=0.01),
)
# The default space (`--space collective`): one multiplier for all agents per quantity, so
# that 50 trials can find the timescale (a world whose moves last ten times longer needs
# horizons ten times longer) instead of spreading themselves over 39 dimensions.
SCALE_KNOBS: tuple[Knob, ...] = (
    Knob("horizon_scale", "float", 0.25, 16.0, log=True),
    Knob("stop_scale", "float", 0.5, 3.0, log=True),
    Knob("take_scale", "float", 0.5, 3.0, log=True),
    Knob("confidence_shift", "float", -0.3, 0.3, step=0.05),
    Knob("size_scale", "float", 0.5, 2.0, log=True),
)
SPACES = ("collective", "agents")
COLLECTIVE_KNOBS: tuple[Knob, ...] = (
    Knob("threshold_share", "float", 0.2, 0.8, step=0.05),
    Knob("window", "int", 1, 6, unit="bars"),
    Knob("narrative_half_life", "int", 4, 1000, log=True, unit="bars"),
    Knob("signal_cooldown", "int", 1, 100, log=True, unit="bars"),
)


def agent_key(agent: Personality, knob: Knob) -> str:
    """A personality's parameter name in the study: ``"The Contrarian/stop_loss"``."""
    return f"{agent.name}/{knob.field}"


def _suggest(trial: Any, name: str, knob: Knob) -> Any:
    if knob.kind == "choice":
        return trial.suggest_categorical(name, list(knob.choices))
    if knob.kind == "int":
        return trial.suggest_int(name, int(knob.low), int(knob.high), log=knob.log)
    return trial.suggest_float(name, knob.low, knob.high, step=knob.step, log=knob.log)


def suggest(trial: Any, agents: Sequence[Personality], space: str = "agents"
            ) -> dict[str, Any]:
    """Every parameter of one trial: the collective's, then the shared multipliers
    (`collective` space) or every agent's own (`agents` space)."""
    params = {k.field: _suggest(trial, k.field, k) for k in COLLECTIVE_KNOBS}
    if space == "collective":
        params.update({k.field: _suggest(trial, k.field, k) for k in SCALE_KNOBS})
        return params
    for agent in agents:
        for k in AGENT_KNOBS:
            name = agent_key(agent, k)
            params[name] = _suggest(trial, name, k)
    return params


def _field_value(knob: Knob, raw: Any) -> Any:
    """A sampled value as the dataclass field wants it (grid noise rounded away)."""
    if knob.kind == "choice":
        return raw
    raw = int(raw) if knob.kind == "int" else round(float(raw), 6)
    if knob.unit == "bars":
        return bars(raw)
    if knob.unit == "vol":
        return Level(raw, VOL)
    return raw


def _scaled(agent: Personality, params: dict[str, Any], bar_seconds: float) -> Personality:
    """An agent with the shared multipliers of the `collective` space applied."""
    hscale = float(params.get("horizon_scale", 1.0))
    horizon = max(1, round(agent.holding_horizon.bars(bar_seconds) * hscale))

    def level(lv: Level, scale: float) -> Level:
        value = round(lv.value * scale, 4)
        return Level(min(value, 1.0), lv.unit) if lv.unit != VOL else Level(value, VOL)

    shift = float(params.get("confidence_shift", 0.0))
    return dataclasses.replace(
        agent,
        holding_horizon=bars(horizon),
        stop_loss=level(agent.stop_loss, float(params.get("stop_scale", 1.0))),
        take_profit=level(agent.take_profit, float(params.get("take_scale", 1.0))),
        min_confidence=round(min(0.99, max(0.0, agent.min_confidence + shift)), 4),
        position_size=round(min(1.0, max(0.001, agent.position_size
                                         * float(params.get("size_scale", 1.0)))), 6),
    )


def apply_params(params: dict[str, Any], settings: Settings, agents: Sequence[Personality],
                 bar_seconds: float | None = None) -> tuple[Settings, list[Personality]]:
    """The settings and personalities of a trial's parameters (absent ones stay as they are)."""
    collective = {k.field: _field_value(k, params[k.field])
                  for k in COLLECTIVE_KNOBS if k.field in params}
    tuned_settings = dataclasses.replace(settings, **collective)
    if any(k.field in params for k in SCALE_KNOBS):
        bar = bar_seconds if bar_seconds is not None else settings.bar_seconds
        return tuned_settings, [_scaled(a, params, bar) for a in agents]
    tuned_agents = []
    for agent in agents:
        changes = {k.field: _field_value(k, params[agent_key(agent, k)])
                   for k in AGENT_KNOBS if agent_key(agent, k) in params}
        tuned_agents.append(dataclasses.replace(agent, **changes))
    return tuned_settings, tuned_agents


def _on_grid(knob: Knob, value: float) -> float | int:
    """`value` clamped into the knob's range and snapped to its grid."""
    value = min(knob.high, max(knob.low, value))
    if knob.kind == "int":
        return round(value)
    if knob.step:
        value = knob.low + round((value - knob.low) / knob.step) * knob.step
    return round(min(knob.high, value), 6)


def _start_value(knob: Knob, value: Any, bar_seconds: float) -> Any:
    """A starting field value in the knob's terms; None when it has none (a fraction stop)."""
    if knob.kind == "choice":
        return value if value in knob.choices else None
    if isinstance(value, Duration):
        value = value.bars(bar_seconds)
    elif isinstance(value, Level):
        if value.unit != VOL:
            return None
        value = value.value
    if value is None:
        return None
    return _on_grid(knob, float(value))


def start_params(settings: Settings, agents: Sequence[Personality], bar_seconds: float,
                 space: str = "agents") -> dict[str, Any]:
    """The untuned starting point in the search space: the study's first trial."""
    values: dict[str, Any] = {}
    for k in COLLECTIVE_KNOBS:
        raw = settings.consensus_threshold()[1] if k.field == "threshold_share" else getattr(
            settings, k.field)
        values[k.field] = _start_value(k, raw, bar_seconds)
    if space == "collective":
        values.update({k.field: 0.0 if k.field == "confidence_shift" else 1.0
                       for k in SCALE_KNOBS})
        return {name: v for name, v in values.items() if v is not None}
    for agent in agents:
        for k in AGENT_KNOBS:
            values[agent_key(agent, k)] = _start_value(k, getattr(agent, k.field), bar_seconds)
    return {name: v for name, v in values.items() if v is not None}


# -- the objective ------------------------------------------------------------------------

def objective(metrics: dict[str, Any], min_trades: int) -> float:
    """Train total return; with fewer than `min_trades` closed trades, a value below any
    return (-1 - the share of trades missing), so abstaining never wins."""
    trades = int(metrics["trades"])
    if trades < min_trades:
        return -1.0 - (min_trades - trades) / min_trades
    return float(metrics["total_return"])


# -- the split ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Split:
    train: list[Tick]
    test: list[Tick]

    def to_dict(self, bar_seconds: float) -> dict[str, Any]:
        return {"train_ticks": len(self.train), "test_ticks": len(self.test),
                "train_start": iso(self.train[0].timestamp),
                "train_end": iso(self.train[-1].timestamp),
                "test_start": iso(self.test[0].timestamp),
                "test_end": iso(self.test[-1].timestamp),
                "bar_seconds": bar_seconds}


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def split_ticks(ticks: Sequence[Tick], train_fraction: float) -> Split:
    """The first `train_fraction` of the ticks (in time order) and the rest."""
    check_fraction(train_fraction)
    cut = int(len(ticks) * train_fraction)
    train, test = list(ticks[:cut]), list(ticks[cut:])
    if min(len(train), len(test)) < MIN_PART_TICKS:
        raise RaweError(f"too few ticks for a split: {len(ticks):,} ticks at --train-fraction "
                        f"{train_fraction:g} give {len(train):,} train and {len(test):,} test "
                        f"ticks; each part needs at least {MIN_PART_TICKS}")
    if train[-1].timestamp >= test[0].timestamp:
        raise RaweError("ticks are not in time order: cannot split them by time")
    return Split(train, test)


def check_fraction(train_fraction: float) -> None:
    if not (0.0 < train_fraction < 1.0) or math.isnan(train_fraction):
        raise UsageError(f"--train-fraction must be between 0 and 1 (exclusive), "
                        f"got {train_fraction:g}")


# -- evaluation, inline or in worker processes --------------------------------------------

@dataclass(frozen=True, slots=True)
class Base:
    """What every evaluation starts from: the untuned settings and agents, the bar size,
    and the exchange's sessions for replayed exchange data."""

    settings: Settings
    agents: tuple[Personality, ...]
    bar_seconds: float
    sessions: Sessions | None = None


@dataclass(frozen=True, slots=True)
class Job:
    part: str  # TRAIN or TEST: which ticks
    label: str
    params: dict[str, Any] | None  # None: the untuned base


def evaluate(parts: dict[str, Sequence[Tick]], base: Base, job: Job) -> dict[str, Any]:
    """One backtest: the job's parameters on the job's part; its metrics."""
    settings, agents = (base.settings, list(base.agents)) if job.params is None else \
        apply_params(job.params, base.settings, base.agents, base.bar_seconds)
    result = run_backtest(parts[job.part], settings, agents, label=job.label,
                          bar_seconds=base.bar_seconds, sessions=base.sessions)
    return dict(result.metrics)


_WORKER: dict[str, Any] = {}


def _init_worker(parts: dict[str, Sequence[Tick]], base: Base) -> None:
    # Ctrl-C is the parent's to handle (it stops the pool): no traceback from each worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["parts"], _WORKER["base"] = parts, base


def _worker_evaluate(job: Job) -> dict[str, Any]:
    return evaluate(_WORKER["parts"], _WORKER["base"], job)


class Runner:
    """Evaluates jobs in order: inline with one worker, else in a process pool that holds
    only `parts` (the search's pool is given the train part alone)."""

    def __init__(self, parts: dict[str, Sequence[Tick]], base: Base, workers: int) -> None:
        self.parts, self.base, self.workers = parts, base, workers
        self.pool: Executor | None = None

    def __enter__(self) -> Runner:
        if self.workers > 1:
            self.pool = ProcessPoolExecutor(self.workers, initializer=_init_worker,
                                            initargs=(self.parts, self.base))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def map(self, jobs: Sequence[Job]) -> Iterator[dict[str, Any]]:
        """Metrics of each job, in the jobs' order (computed in parallel with a pool)."""
        if self.pool is None:
            for job in jobs:
                yield evaluate(self.parts, self.base, job)
            return
        futures = [self.pool.submit(_worker_evaluate, job) for job in jobs]
        for future in futures:
            yield future.result()


# -- the search ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TuneOptions:
    train_fraction: float = 0.6
    trials: int = 50
    seed: int = 7
    workers: int = 1
    min_trades: int = DEFAULT_MIN_TRADES
    space: str = "collective"


@dataclass(frozen=True, slots=True)
class TrialDone:
    """Progress of the search, after each trial is told."""

    number: int  # 0-based
    value: float
    best_value: float


@dataclass(slots=True)
class SearchResult:
    best_number: int
    best_value: float
    best_params: dict[str, Any]
    train_metrics: dict[str, Any]  # of the best trial
    values: list[float] = field(default_factory=list)  # every trial's objective, in order


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.logging.disable_default_handler()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def search(train: Sequence[Tick], base: Base, options: TuneOptions,
           on_trial: Callable[[TrialDone], None] | None = None) -> SearchResult:
    """The study, on the train ticks only: batches of `workers` trials asked, evaluated in
    parallel, then told in trial order (so the study depends on seed and workers only)."""
    optuna = _quiet_optuna()
    sampler = optuna.samplers.TPESampler(seed=options.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(start_params(base.settings, base.agents, base.bar_seconds,
                                     options.space))
    batch = max(1, min(options.workers, options.trials))
    metrics_of: dict[int, dict[str, Any]] = {}
    values: list[float] = []
    with Runner({TRAIN: train}, base, batch) as runner:
        while len(values) < options.trials:
            asked = [study.ask() for _ in range(min(batch, options.trials - len(values)))]
            jobs = [Job(TRAIN, f"trial {t.number}", suggest(t, base.agents, options.space))
                    for t in asked]
            for trial, metrics in zip(asked, runner.map(jobs), strict=True):
                value = objective(metrics, options.min_trades)
                study.tell(trial, value)
                metrics_of[trial.number] = metrics
                values.append(value)
                if on_trial is not None:
                    on_trial(TrialDone(trial.number, value, max(values)))
    best = study.best_trial
    params = {k: round(v, 6) if isinstance(v, float) else v for k, v in best.params.items()}
    return SearchResult(best.number, float(best.value), params, metrics_of[best.number], values)


# -- the whole calibration ----------------------------------------------------------------

@dataclass(slots=True)
class TuneResult:
    split: Split
    base: Base
    options: TuneOptions
    search: SearchResult
    test_metrics: dict[str, Any]
    baseline_train: dict[str, Any]
    baseline_test: dict[str, Any]

    def tuned(self) -> tuple[Settings, list[Personality]]:
        return apply_params(self.search.best_params, self.base.settings, self.base.agents,
                            self.base.bar_seconds)


def tune(ticks: Sequence[Tick], base: Base, options: TuneOptions,
         on_trial: Callable[[TrialDone], None] | None = None,
         on_final: Callable[[], None] | None = None) -> TuneResult:
    """Split, search on train, then the best and the untuned parameters on both parts."""
    if options.trials < 1:
        raise UsageError("--trials must be at least 1")
    split = split_ticks(ticks, options.train_fraction)
    found = search(split.train, base, options, on_trial)
    jobs = [Job(TEST, "test", found.best_params), Job(TEST, "baseline test", None),
            Job(TRAIN, "baseline train", None)]
    with Runner({TRAIN: split.train, TEST: split.test}, base,
                min(options.workers, len(jobs))) as runner:
        results = []
        for metrics in runner.map(jobs):
            results.append(metrics)
            if on_final is not None:
                on_final()
    test, baseline_test, baseline_train = results
    return TuneResult(split, base, options, found, test, baseline_train, baseline_test)


# -- where the ticks come from ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Source:
    ticks: list[Tick]
    bar_seconds: float
    label: str  # for the progress line and the files' header
    info: dict[str, Any]  # for --json
    sessions: Sessions | None = None  # replayed exchange data: its sessions


def load_source(data: Path | None, scenario: str | None, ticks: int | None,
                settings: Settings, default_ticks: int) -> Source:
    """Recorded history (the first `ticks` of it) or a synthetic world of `ticks` bars."""
    if data is not None:
        from rawe_cli.feeds import replay

        loaded = replay.load(data)
        chosen = loaded.ticks[:ticks] if ticks is not None else loaded.ticks
        return Source(list(chosen), loaded.bar_seconds,
                      f"data {data} ({len(loaded.symbols)} symbols, {len(chosen):,} ticks)",
                      {"data": str(data), "symbols": list(loaded.symbols),
                       "ticks": len(chosen), "calendar": loaded.calendar}, loaded.sessions)
    from rawe_cli.app.runtime import world_params
    from rawe_cli.feeds.scenarios import scenario_params, scenario_ticks

    assert scenario is not None
    base = world_params(settings)
    scenario_params(scenario, base)  # an unknown name: one line, before anything runs
    count = ticks or default_ticks
    bar = format_seconds(settings.bar_seconds)
    return Source(list(scenario_ticks(scenario, base, count)), settings.bar_seconds,
                  f"scenario {scenario} seed {settings.seed} ({len(settings.symbols)} symbols, "
                  f"{count:,} ticks of {bar})",
                  {"scenario": scenario, "seed": settings.seed, "ticks": count,
                   "bar_size": bar, "symbols": list(settings.symbols)})


# -- the output files ---------------------------------------------------------------------

def _yaml_value(value: Any) -> Any:
    if isinstance(value, Duration | Level):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def personalities_yaml(agents: Sequence[Personality], header: Sequence[str]) -> str:
    """The personalities in the shipped file's format (fields in order, a blank line between
    entries, durations as 40b, levels as 3vol)."""
    import yaml

    lines = [f"# {h}" for h in header] + ["personalities:"]
    for i, agent in enumerate(agents):
        entry = {f.name: _yaml_value(getattr(agent, f.name))
                 for f in dataclasses.fields(Personality)}
        text = yaml.safe_dump([entry], sort_keys=False, default_flow_style=None,
                              allow_unicode=True, width=100)
        if i:
            lines.append("")
        lines += ["  " + line for line in text.rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def settings_yaml(settings: Settings, header: Sequence[str]) -> str:
    """The settings that differ from the defaults, in SETTINGS_FIELDS order."""
    import yaml

    defaults = Settings()
    entry: dict[str, Any] = {}
    for f in SETTINGS_FIELDS:
        value = getattr(settings, f.name)
        if value == getattr(defaults, f.name):
            continue
        entry[f.name] = format_seconds(value) if f.kind == "time" else _yaml_value(value)
    body = yaml.safe_dump(entry, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=100) if entry else "{}\n"
    return "".join(f"# {h}\n" for h in header) + body


def settings_path(out: Path) -> Path:
    """``tuned.yaml`` -> ``tuned.settings.yaml``, next to it."""
    return out.with_name(f"{out.stem}.settings.yaml")


def check_out(out: Path) -> None:
    """Fail before any work if `out` cannot be written where it is asked."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--out {out}: directory {parent} does not exist")
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory")


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, then rename it over `path`."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise RaweError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RaweError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def header_lines(result: TuneResult, source: str) -> list[str]:
    o = result.options
    return [f"Tuned by `rawe tune` on {source}.",
            f"{o.trials} trials, seed {o.seed}, {o.workers} workers, best trial "
            f"{result.search.best_number}; trained on the first {len(result.split.train):,} "
            f"ticks (to {iso(result.split.train[-1].timestamp)}).",
            "Load it with --personalities FILE and the same --agents count."]


def write_outputs(result: TuneResult, out: Path, source: str) -> tuple[Path, Path | None]:
    """The tuned personalities at `out`; the tuned settings beside it when they changed."""
    settings, agents = result.tuned()
    header = header_lines(result, source)
    atomic_write(out, personalities_yaml(agents, header))
    if settings == result.base.settings:
        return out, None
    path = settings_path(out)
    atomic_write(path, settings_yaml(settings, [*header[:2], "Load it with --config FILE."]))
    return out, path


def to_dict(result: TuneResult, out: Path, settings_file: Path | None,
            source: dict[str, Any]) -> dict[str, Any]:
    """The --json document."""
    s = result.search
    return {
        "source": source,
        "train": {"metrics": s.train_metrics},
        "test": {"metrics": result.test_metrics},
        "baseline_train": {"metrics": result.baseline_train},
        "baseline_test": {"metrics": result.baseline_test},
        "personalities": str(out),
        "settings": str(settings_file) if settings_file is not None else None,
        "trials": result.options.trials,
        "workers": result.options.workers,
        "seed": result.options.seed,
        "min_trades": result.options.min_trades,
        "best_trial": {"number": s.best_number, "value": s.best_value, "params": s.best_params},
        "split": result.split.to_dict(result.base.bar_seconds),
    }
