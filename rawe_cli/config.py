"""Settings and personalities: YAML files validated field by field, with one-line errors."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rawe_cli.durations import Duration, bars, parse_duration
from rawe_cli.errors import ConfigError
from rawe_cli.levels import VOL, Level, parse_level
from rawe_cli.models import SignalType
from rawe_cli.schema import Field, check_mapping

SCHEMES = ("majority", "winrate", "hedge", "regime", "meta")
DEFAULT_THRESHOLD_SHARE = 0.5
# Durations are in bars by default: right at any bar size (README, "Bars and durations").
DEFAULT_WINDOW = bars(3)
DEFAULT_HALF_LIFE = bars(24)
DEFAULT_SIGNAL_COOLDOWN = bars(6)
DEFAULT_HORIZON = bars(40)
DEFAULT_COOLDOWN = bars(6)
DEFAULT_STOP = Level(3.0, VOL)
DEFAULT_TAKE = Level(4.0, VOL)
SIGNAL_TYPES = tuple(t.value for t in SignalType)
DEFAULT_ARCHIVE = "~/.local/share/rawe/{namespace}-decisions.jsonl"

SETTINGS_FIELDS: tuple[Field, ...] = (
    Field("symbols", "str_list", ("AAPL", "MSFT", "NVDA", "TSLA", "BTC/USD"),
          "Symbols the synthetic world (or a live feed) trades."),
    Field("threshold", "float", None, "Absolute consensus threshold: the winning side's summed "
          "weight must reach it. Unset (the default): the relative threshold_share applies.",
          lo=0, lo_open=True, optional=True),
    Field("threshold_share", "float", None, "Relative threshold: a share of the registered "
          "agents' current total weight (default 0.5 when `threshold` is not set either); "
          "overrides `threshold` when set.", lo=0, hi=1, lo_open=True, optional=True),
    Field("window", "duration", DEFAULT_WINDOW, "How long a proposal stays in its asset's "
          "window: bars (3b) or time (15s, 5m); a plain number is seconds.", lo=0,
          lo_open=True),
    Field("narrative_half_life", "duration", DEFAULT_HALF_LIFE, "Narrative engine: time for an "
          "unmentioned narrative's intensity to halve (bars or time).", lo=0, lo_open=True),
    Field("signal_cooldown", "duration", DEFAULT_SIGNAL_COOLDOWN, "Narrative engine: least "
          "time between two signals of one type on one narrative and symbol.", lo=0),
    Field("scheme", "choice", "meta", "Weighting scheme (meta: per-regime weights and the "
          "coalition gate of core/meta.py).", choices=SCHEMES),
    Field("fee_bps", "float", 1.0, "Broker fee, basis points of notional, per fill.", lo=0,
          hi=1000),
    Field("slippage_bps", "float", 2.0, "Paper fill slippage, basis points against the trader.",
          lo=0, hi=1000),
    Field("initial_cash", "float", 100_000.0, "Starting cash of the collective, dollars.", lo=0,
          lo_open=True),
    Field("max_open_positions", "int", 10, "Risk: most positions open at once.", lo=1),
    Field("max_position_fraction", "float", 0.25, "Risk: largest position as a fraction of "
          "equity; larger sizes are cut to it.", lo=0, hi=1, lo_open=True),
    Field("max_gross_exposure", "float", 1.5, "Risk: most gross exposure as a multiple of "
          "equity; a decision that would pass it is skipped.", lo=0, lo_open=True),
    Field("tick_seconds", "time", 5.0, "The bar size: event time between two bars of the "
          "synthetic world, and the poll interval (one bar) of a live feed; seconds or a time "
          "(5m, 1h, 1d). Replay data takes its bar size from its own bars.", lo=0,
          lo_open=True),
    Field("seed", "int", 7, "Seed of the synthetic world.", lo=0),
    Field("namespace", "str", "rawe", "Prefix of every Redis key."),
    Field("shards", "int", None, "Live: how many sharded engines (`rawe consensus --shard "
          "K/N`) the collective has, so that agents and inject-signal publish each proposal "
          "to its asset's shard (env RAWE_SHARDS). Unset: the count recorded in Redis by the "
          "engines, else not sharded.", lo=1, hi=256, optional=True),
    Field("learning_rate", "float", 0.1, "Learned schemes (hedge, regime, meta): learning "
          "rate of the multiplicative "
          "weights.", lo=0, lo_open=True, hi=10),
    Field("min_weight", "float", 0.1, "Learned schemes: lower bound of a score.", lo=0,
          lo_open=True),
    Field("max_weight", "float", 3.0, "Learned schemes: upper bound of a score.", lo=0,
          lo_open=True),
    Field("clock_tolerance", "time", 60.0, "Live: the most a proposal may be stamped ahead of "
          "the engine's clock, and a bar or narrative event ahead of the wall clock; further "
          "ahead is dead-lettered.",
          lo=0, lo_open=True),
    Field("ledger_retention", "time", 604800.0, "Live: closed, skipped and rejected decisions "
          "older than this move from Redis to the archive file (7 days; 1h, 2d, ...).",
          lo=0, lo_open=True),
    Field("archive", "str", DEFAULT_ARCHIVE, "Live: the decision archive, a JSON-lines file "
          "(append-only) that `rawe decisions --archived` reads; {namespace} is replaced."),
)

PERSONALITY_FIELDS: tuple[Field, ...] = (
    Field("name", "str", None, "Display name; unique in the file."),
    Field("description", "str", "-", "One line on how this agent behaves."),
    Field("trusts", "choice_list", SIGNAL_TYPES, "Signal types this agent acts on.",
          choices=SIGNAL_TYPES),
    Field("stance", "choice", "follow", "`follow` trades the signal's direction, `fade` "
          "the opposite.", choices=("follow", "fade")),
    Field("min_strength", "float", 0.5, "Ignore signals weaker than this.", lo=0, hi=1),
    Field("min_confidence", "float", 0.7, "Propose only at or above this confidence.", lo=0,
          hi=1),
    Field("risk_aversion", "float", 0.5, "How much a signal's risk score lowers confidence.",
          lo=0, hi=1),
    Field("max_risk_score", "float", 1.0, "Ignore signals riskier than this.", lo=0, hi=1),
    Field("position_size", "float", 0.05, "Base size, a fraction of equity.", lo=0, hi=1,
          lo_open=True),
    Field("size_by_confidence", "bool", True, "Scale size by confidence."),
    Field("holding_horizon", "duration", DEFAULT_HORIZON, "How long to hold before a time "
          "exit: bars (40b) or time (2h); a plain number is seconds.", lo=0, lo_open=True),
    Field("stop_loss", "level", DEFAULT_STOP, "Stop-loss: a fraction of the entry price (0.02, "
          "2%) or a multiple of the noise over the holding horizon (3vol)."),
    Field("take_profit", "level", DEFAULT_TAKE, "Take-profit: a fraction of the entry price or "
          "a multiple of the noise over the holding horizon (4vol)."),
    Field("cooldown", "duration", DEFAULT_COOLDOWN, "Least time between two proposals on one "
          "asset: bars or time; a plain number is seconds.", lo=0),
)


@dataclass(frozen=True, slots=True)
class Personality:
    name: str
    description: str = "-"
    trusts: tuple[str, ...] = SIGNAL_TYPES
    stance: str = "follow"
    min_strength: float = 0.5
    min_confidence: float = 0.7
    risk_aversion: float = 0.5
    max_risk_score: float = 1.0
    position_size: float = 0.05
    size_by_confidence: bool = True
    holding_horizon: Duration = DEFAULT_HORIZON
    stop_loss: Level = DEFAULT_STOP
    take_profit: Level = DEFAULT_TAKE
    cooldown: Duration = DEFAULT_COOLDOWN

    def __post_init__(self) -> None:
        # Python callers may pass plain numbers (seconds, fractions) or strings ("40b").
        for name in ("holding_horizon", "cooldown"):
            object.__setattr__(self, name, parse_duration(getattr(self, name)))
        for name in ("stop_loss", "take_profit"):
            object.__setattr__(self, name, parse_level(getattr(self, name)))


@dataclass(frozen=True, slots=True)
class Settings:
    symbols: tuple[str, ...] = ("AAPL", "MSFT", "NVDA", "TSLA", "BTC/USD")
    threshold: float | None = None
    threshold_share: float | None = None
    window: Duration = DEFAULT_WINDOW
    narrative_half_life: Duration = DEFAULT_HALF_LIFE
    signal_cooldown: Duration = DEFAULT_SIGNAL_COOLDOWN
    scheme: str = "meta"
    fee_bps: float = 1.0
    slippage_bps: float = 2.0
    initial_cash: float = 100_000.0
    max_open_positions: int = 10
    max_position_fraction: float = 0.25
    max_gross_exposure: float = 1.5
    tick_seconds: float = 5.0
    seed: int = 7
    namespace: str = "rawe"
    shards: int | None = None
    learning_rate: float = 0.1
    min_weight: float = 0.1
    max_weight: float = 3.0
    clock_tolerance: float = 60.0
    ledger_retention: float = 604800.0
    archive: str = DEFAULT_ARCHIVE

    def __post_init__(self) -> None:
        # Python callers may pass plain numbers (seconds) or strings ("3b", "5m").
        for name in ("window", "narrative_half_life", "signal_cooldown"):
            object.__setattr__(self, name, parse_duration(getattr(self, name)))
        for name in ("tick_seconds", "clock_tolerance", "ledger_retention"):
            object.__setattr__(self, name,
                               parse_duration(getattr(self, name), allow_bars=False).value)

    def archive_path(self) -> Path:
        """Where decisions past the ledger retention go."""
        return Path(self.archive.replace("{namespace}", self.namespace)).expanduser()

    @property
    def bar_seconds(self) -> float:
        """The bar size of the synthetic world or live feed (replay data has its own)."""
        return self.tick_seconds

    def consensus_threshold(self) -> tuple[float, float | None]:
        """(absolute, share) for the consensus engine: the share wins when it applies."""
        share = self.threshold_share
        if share is None and self.threshold is None:
            share = DEFAULT_THRESHOLD_SHARE
        return (self.threshold if self.threshold is not None else 1.0), share

    def with_overrides(self, **overrides: Any) -> Settings:
        """Flags override the file: None means "not given"; values are validated."""
        given = {k: v for k, v in overrides.items() if v is not None}
        checked = check_mapping(SETTINGS_FIELDS, given, "option", partial=True)
        merged = dataclasses.replace(self, **checked)
        _cross_check(merged, "option")
        return merged


def _cross_check(s: Settings, where: str) -> None:
    if s.min_weight > s.max_weight:
        raise ConfigError(f"{where}: min_weight ({s.min_weight}) is above max_weight "
                          f"({s.max_weight})")


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a YAML file (all fields optional), or the defaults when path is None."""
    if path is None:
        return Settings()
    path = Path(path)
    data = _read_yaml(path)
    if data is None:
        data = {}
    checked = check_mapping(SETTINGS_FIELDS, data, str(path), partial=True)
    settings = dataclasses.replace(Settings(), **checked)
    _cross_check(settings, str(path))
    return settings


def _personalities_from(data: Any, where: str) -> list[Personality]:
    if isinstance(data, dict) and "personalities" in data:
        data = data["personalities"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{where}: expected a non-empty list under 'personalities:'")
    out: list[Personality] = []
    seen: set[str] = set()
    for i, entry in enumerate(data, start=1):
        label = entry.get("name") if isinstance(entry, dict) else None
        entry_where = f"{where}: personality {i}" + (f" ({label!r})" if label else "")
        checked = check_mapping(PERSONALITY_FIELDS, entry, entry_where)
        if checked["name"] in seen:
            raise ConfigError(f"{entry_where}: field 'name': duplicate name {checked['name']!r}")
        seen.add(checked["name"])
        out.append(Personality(**checked))
    return out


def load_personalities(path: str | Path | None) -> list[Personality]:
    """Personalities from a YAML file, or the shipped ones when path is None."""
    if path is None:
        import yaml

        text = resources.files("rawe_cli").joinpath("personalities/default.yaml").read_text()
        return _personalities_from(yaml.safe_load(text), "personalities/default.yaml")
    path = Path(path)
    return _personalities_from(_read_yaml(path), str(path))


def pick_agents(personalities: list[Personality], count: int, seed: int) -> list[Personality]:
    """`count` agents from the personalities, in file order.

    Past the end of the file, personalities repeat as numbered variants ("Name #2") whose
    cut-offs are jittered by up to 10%, deterministically from the seed, so that variants are
    not clones voting in lockstep.
    """
    if count < 1:
        raise ConfigError("--agents must be at least 1")
    if count > 1000:
        raise ConfigError("--agents must be at most 1000")
    agents: list[Personality] = []
    rng = random.Random(seed)
    for i in range(count):
        base = personalities[i % len(personalities)]
        round_ = i // len(personalities)
        if round_ == 0:
            agents.append(base)
            continue

        def jitter(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
            return min(hi, max(lo, x * (1 + rng.uniform(-0.1, 0.1))))

        agents.append(
            dataclasses.replace(
                base,
                name=f"{base.name} #{round_ + 1}",
                min_strength=jitter(base.min_strength),
                min_confidence=jitter(base.min_confidence),
                position_size=jitter(base.position_size, 1e-6),
                holding_horizon=base.holding_horizon.scaled(
                    jitter(1.0, 0.5, 2.0)),
            )
        )
    return agents
