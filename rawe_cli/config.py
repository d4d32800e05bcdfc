"""Settings and personalities: pydantic dataclasses, read from YAML files, one-line errors.

The field types, their JSON Schema and the translation of pydantic's errors are in schema.py.
"""

from __future__ import annotations

import dataclasses
import random
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from rawe_cli.durations import bars
from rawe_cli.errors import ConfigError
from rawe_cli.levels import VOL, Level
from rawe_cli.models import SignalType
from rawe_cli.schema import (
    JSON_SCHEMA_DIALECT,
    AnyDuration,
    BarTimeframe,
    FieldDoc,
    Flag,
    Names,
    Number,
    PositiveDuration,
    PositiveTime,
    PriceLevel,
    Text,
    Whole,
    field_docs,
    json_schema,
    name_list,
    one_line,
)

T = TypeVar("T")

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

SignalTypeName = Literal[SIGNAL_TYPES]  # type: ignore[valid-type]
SchemeName = Literal[SCHEMES]  # type: ignore[valid-type]
# Unknown fields are errors (usually typos); validation on every construction, from a file,
# a flag or Python (`dataclasses.replace` included), so a Settings is always a valid one.
STRICT = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True, config=STRICT)
class Personality:
    name: Annotated[Text, Field(description="Display name; unique in the file.")]
    description: Annotated[Text, Field(description="One line on how this agent behaves.")
                           ] = "-"
    trusts: Annotated[tuple[SignalTypeName, ...], *name_list({"enum": list(SIGNAL_TYPES)}),
                      Field(description="Signal types this agent acts on.")] = SIGNAL_TYPES
    stance: Annotated[Literal["follow", "fade"], Field(
        description="`follow` trades the signal's direction, `fade` the opposite.")] = "follow"
    min_strength: Annotated[Number, Field(ge=0, le=1,
                                          description="Ignore signals weaker than this.")] = 0.5
    min_confidence: Annotated[Number, Field(
        ge=0, le=1, description="Propose only at or above this confidence.")] = 0.7
    risk_aversion: Annotated[Number, Field(
        ge=0, le=1, description="How much a signal's risk score lowers confidence.")] = 0.5
    max_risk_score: Annotated[Number, Field(
        ge=0, le=1, description="Ignore signals riskier than this.")] = 1.0
    position_size: Annotated[Number, Field(
        gt=0, le=1, description="Base size, a fraction of equity.")] = 0.05
    size_by_confidence: Annotated[Flag, Field(description="Scale size by confidence.")] = True
    holding_horizon: Annotated[PositiveDuration, Field(
        description="How long to hold before a time exit: bars (40b) or time (2h); a plain "
        "number is seconds.")] = DEFAULT_HORIZON
    stop_loss: Annotated[PriceLevel, Field(
        description="Stop-loss: a fraction of the entry price (0.02, 2%) or a multiple of the "
        "noise over the holding horizon (3vol).")] = DEFAULT_STOP
    take_profit: Annotated[PriceLevel, Field(
        description="Take-profit: a fraction of the entry price or a multiple of the noise "
        "over the holding horizon (4vol).")] = DEFAULT_TAKE
    cooldown: Annotated[AnyDuration, Field(
        description="Least time between two proposals on one asset: bars or time; a plain "
        "number is seconds.")] = DEFAULT_COOLDOWN


@dataclass(frozen=True, slots=True, config=STRICT)
class Settings:
    symbols: Annotated[Names, Field(
        description="Symbols the synthetic world (or a live feed) trades.")
    ] = ("AAPL", "MSFT", "NVDA", "TSLA", "BTC/USD")
    threshold: Annotated[Number | None, Field(
        gt=0, description="Absolute consensus threshold: the winning side's summed weight "
        "must reach it. Unset (the default): the relative threshold_share applies.")] = None
    threshold_share: Annotated[Number | None, Field(
        gt=0, le=1, description="Relative threshold: a share of the registered agents' "
        "current total weight (default 0.5 when `threshold` is not set either); overrides "
        "`threshold` when set.")] = None
    window: Annotated[PositiveDuration, Field(
        description="How long a proposal stays in its asset's window: bars (3b) or time "
        "(15s, 5m); a plain number is seconds.")] = DEFAULT_WINDOW
    narrative_half_life: Annotated[PositiveDuration, Field(
        description="Narrative engine: time for an unmentioned narrative's intensity to "
        "halve (bars or time).")] = DEFAULT_HALF_LIFE
    signal_cooldown: Annotated[AnyDuration, Field(
        description="Narrative engine: least time between two signals of one type on one "
        "narrative and symbol.")] = DEFAULT_SIGNAL_COOLDOWN
    scheme: Annotated[SchemeName, Field(
        description="Weighting scheme (meta: per-regime weights and the coalition gate of "
        "core/meta.py).")] = "meta"
    fee_bps: Annotated[Number, Field(
        ge=0, le=1000, description="Broker fee, basis points of notional, per fill.")] = 1.0
    slippage_bps: Annotated[Number, Field(
        ge=0, le=1000, description="Paper fill slippage, basis points against the trader.")
    ] = 2.0
    initial_cash: Annotated[Number, Field(
        gt=0, description="Starting cash of the collective, dollars.")] = 100_000.0
    max_open_positions: Annotated[Whole, Field(
        ge=1, description="Risk: most positions open at once.")] = 10
    max_position_fraction: Annotated[Number, Field(
        gt=0, le=1, description="Risk: largest position as a fraction of equity; larger "
        "sizes are cut to it.")] = 0.25
    max_gross_exposure: Annotated[Number, Field(
        gt=0, description="Risk: most gross exposure as a multiple of equity; a decision "
        "that would pass it is skipped.")] = 1.5
    tick_seconds: Annotated[PositiveTime, Field(
        description="The bar size: event time between two bars of the synthetic world, and "
        "the poll interval (one bar) of a live feed; seconds or a time (5m, 1h, 1d). Replay "
        "data takes its bar size from its own bars.")] = 5.0
    seed: Annotated[Whole, Field(ge=0, description="Seed of the synthetic world.")] = 7
    namespace: Annotated[Text, Field(description="Prefix of every Redis key.")] = "rawe"
    shards: Annotated[Whole | None, Field(
        ge=1, le=256, description="Live: how many sharded engines (`rawe consensus --shard "
        "K/N`) the collective has, so that agents and inject-signal publish each proposal to "
        "its asset's shard (env RAWE_SHARDS). Unset: the count recorded in Redis by the "
        "engines, else not sharded.")] = None
    learning_rate: Annotated[Number, Field(
        gt=0, le=10, description="Learned schemes (hedge, regime, meta): learning rate of "
        "the multiplicative weights.")] = 0.1
    min_weight: Annotated[Number, Field(
        gt=0, description="Learned schemes: lower bound of a score.")] = 0.1
    max_weight: Annotated[Number, Field(
        gt=0, description="Learned schemes: upper bound of a score.")] = 3.0
    clock_tolerance: Annotated[PositiveTime, Field(
        description="Live: the most a proposal may be stamped ahead of the engine's clock, "
        "and a bar or narrative event ahead of the wall clock; further ahead is "
        "dead-lettered.")] = 60.0
    ledger_retention: Annotated[PositiveTime, Field(
        description="Live: closed, skipped and rejected decisions older than this move from "
        "Redis to the archive file (7 days; 1h, 2d, ...).")] = 604800.0
    archive: Annotated[Text, Field(
        description="Live: the decision archive, a JSON-lines file (append-only) that "
        "`rawe decisions --archived` reads; {namespace} is replaced.")] = DEFAULT_ARCHIVE
    sentiment: Annotated[Literal["blend", "words", "vader"], Field(
        description="Headline sentiment scorer of news: blend (the word list, else VADER), "
        "words (the word list) or vader (README, \"Sentiment\").")] = "blend"
    timeframe: Annotated[BarTimeframe, Field(
        description="The bar size of `--feed alpaca` (Alpaca's streams): 1Min .. 59Min, "
        "1Hour .. 23Hour or 1Day; minute bars from the stream are merged into bars of this "
        "size.")] = "1Min"
    data_feed: Annotated[Literal["iex", "sip"], Field(
        description="Alpaca's stock data feed for `--feed alpaca`: iex (free) or sip (all US "
        "exchanges, needs a subscription).")] = "iex"

    @model_validator(mode="after")
    def _weights_in_order(self) -> Settings:
        if self.min_weight > self.max_weight:
            raise ValueError(f"min_weight ({self.min_weight}) is above max_weight "
                             f"({self.max_weight})")
        return self

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
        if not given:
            return self
        return validated(Settings, {**_values(self), **given}, "option")


SETTINGS_FIELDS: tuple[FieldDoc, ...] = field_docs(Settings)
PERSONALITY_FIELDS: tuple[FieldDoc, ...] = field_docs(Personality)


def _values(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def validated(cls: type[T], data: Any, where: str) -> T:
    """`cls` from a mapping of field: value, or ConfigError naming `where` in one line."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of field: value, got {type(data).__name__}")
    try:
        return cls.__pydantic_validator__.validate_python(data)  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise ConfigError(one_line(exc, cls, where)) from None


def _read_yaml(path: Path) -> Any:
    import yaml

    from rawe_cli.textfile import read_text

    text = read_text(path, ConfigError)
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
    return validated(Settings, data, str(path))


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
        personality = validated(Personality, entry, entry_where)
        if personality.name in seen:
            raise ConfigError(f"{entry_where}: field 'name': duplicate name "
                              f"{personality.name!r}")
        seen.add(personality.name)
        out.append(personality)
    return out


def load_personalities(path: str | Path | None) -> list[Personality]:
    """Personalities from a YAML file, or the shipped ones when path is None."""
    if path is None:
        import yaml

        text = resources.files("rawe_cli").joinpath("personalities/default.yaml").read_text()
        return _personalities_from(yaml.safe_load(text), "personalities/default.yaml")
    path = Path(path)
    return _personalities_from(_read_yaml(path), str(path))


def settings_schema() -> dict[str, Any]:
    """The JSON Schema of a settings file (`rawe config schema`)."""
    body = json_schema(Settings)
    return {"$schema": JSON_SCHEMA_DIALECT, "title": "RAWE settings",
            "description": "A RAWE settings file (rawe run -c FILE); every field is optional, "
            "flags override the file. Durations: bars (3b) or time (15s, 5m); a plain number "
            "is seconds.", **body}


def personalities_schema() -> dict[str, Any]:
    """The JSON Schema of a personalities file (`rawe config schema --personalities`): a list
    of entries under `personalities:` (or the bare list)."""
    entries = {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/Personality"},
               "description": "The agents' personalities, in order; names are unique."}
    return {"$schema": JSON_SCHEMA_DIALECT, "title": "RAWE personalities",
            "description": "A RAWE personalities file (rawe run -p FILE); fields left out take "
            "their defaults. Durations: bars (40b) or time (2h); levels: a fraction of the "
            "entry price (0.02, 2%) or a multiple of the noise (3vol).",
            "anyOf": [{"type": "object", "required": ["personalities"],
                       "properties": {"personalities": {"$ref": "#/definitions/entries"}}},
                      {"$ref": "#/definitions/entries"}],
            "definitions": {"Personality": json_schema(Personality), "entries": entries}}


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
