"""A small declarative validator: each field has a kind, bounds and a description.

Used for the settings file and the personality files, so every error names the file, the
entry and the field, in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rawe_cli.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    # "float" | "int" | "str" | "bool" | "str_list" | "choice" | "choice_list"
    # | "duration" (bars or time, a Duration) | "time" (time units only, float seconds)
    # | "level" (a fraction of price or a multiple of noise, a Level)
    # | "timeframe" (an Alpaca bar timeframe, 1Min .. 1Day, its canonical spelling)
    kind: str
    default: Any
    description: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself not allowed
    choices: tuple[str, ...] = ()
    optional: bool = False  # None allowed


def _bounds_text(f: Field) -> str:
    if f.lo is not None and f.hi is not None:
        left = "(" if f.lo_open else "["
        return f"a number in {left}{f.lo:g}, {f.hi:g}]"
    if f.lo is not None:
        return f"a number {'>' if f.lo_open else '>='} {f.lo:g}"
    return "a number"


def check_field(f: Field, value: Any, where: str) -> Any:
    """Return the value converted to the field's kind, or raise ConfigError naming `where`."""
    prefix = f"{where}: field '{f.name}'"
    if value is None:
        if f.optional:
            return None
        raise ConfigError(f"{prefix}: is required")
    if f.kind in ("duration", "time"):
        return _check_duration(f, value, prefix)
    if f.kind == "timeframe":
        from rawe_cli.timeframe import parse_timeframe

        try:
            return str(parse_timeframe(value))
        except ValueError as exc:
            raise ConfigError(f"{prefix}: {exc}") from None
    if f.kind == "level":
        from rawe_cli.levels import parse_level

        try:
            return parse_level(value)
        except ValueError as exc:
            raise ConfigError(f"{prefix}: {exc}") from None
    if f.kind in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{prefix}: must be {_bounds_text(f)}, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"{prefix}: must be finite, got {value!r}")
        if f.kind == "int":
            if number != int(number):
                raise ConfigError(f"{prefix}: must be a whole number, got {value!r}")
            number = int(number)
        too_low = f.lo is not None and (number <= f.lo if f.lo_open else number < f.lo)
        too_high = f.hi is not None and number > f.hi
        if too_low or too_high:
            raise ConfigError(f"{prefix}: must be {_bounds_text(f)}, got {value!r}")
        return number
    if f.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{prefix}: must be true or false, got {value!r}")
        return value
    if f.kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{prefix}: must be a non-empty string, got {value!r}")
        return value.strip()
    if f.kind == "choice":
        if value not in f.choices:
            raise ConfigError(f"{prefix}: must be one of {', '.join(f.choices)}, got {value!r}")
        return value
    if f.kind in ("str_list", "choice_list"):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{prefix}: must be a non-empty list, got {value!r}")
        items: list[str] = []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(f"{prefix}: every item must be a non-empty string, got {item!r}")
            if f.kind == "choice_list" and item not in f.choices:
                raise ConfigError(
                    f"{prefix}: unknown item {item!r}; expected any of {', '.join(f.choices)}"
                )
            items.append(item.strip())
        if len(set(items)) != len(items):
            raise ConfigError(f"{prefix}: has duplicate items")
        return tuple(items)
    raise AssertionError(f"unknown field kind {f.kind}")


def _check_duration(f: Field, value: Any, prefix: str) -> Any:
    from rawe_cli.durations import EXAMPLES, parse_duration

    try:
        d = parse_duration(value, allow_bars=f.kind == "duration")
    except ValueError as exc:
        raise ConfigError(f"{prefix}: {exc}") from None
    too_low = f.lo is not None and (d.value <= f.lo if f.lo_open else d.value < f.lo)
    if too_low:
        need = "> 0" if f.lo_open and f.lo == 0 else f">= {f.lo:g}"
        raise ConfigError(f"{prefix}: must be a duration {need} ({EXAMPLES}), got {value!r}")
    return d if f.kind == "duration" else d.value


def check_mapping(
    fields: tuple[Field, ...], data: Any, where: str, *, partial: bool = False
) -> dict[str, Any]:
    """Validate a mapping against `fields`; unknown keys are errors (they are usually typos).

    With `partial`, absent fields are left out instead of taking their defaults.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of field: value, got {type(data).__name__}")
    known = {f.name: f for f in fields}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{where}: unknown field {key!r}; known fields: {', '.join(sorted(known))}"
            )
    out: dict[str, Any] = {}
    for f in fields:
        if f.name in data:
            out[f.name] = check_field(f, data[f.name], where)
        elif not partial:
            if f.default is None and not f.optional:
                raise ConfigError(f"{where}: field '{f.name}': is required")
            out[f.name] = f.default
    return out
