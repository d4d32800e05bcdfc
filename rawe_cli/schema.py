"""The field types of the settings and personality files, on pydantic, and its errors as one line.

`config.py` declares ``Settings`` and ``Personality`` as pydantic dataclasses whose fields are
annotated with the types below (bounds and descriptions in ``Field(...)``). pydantic validates
them, in Python and from YAML alike, and writes their JSON Schema (`rawe config schema`).
`one_line` turns its ValidationError, which is several lines in pydantic's own words, into the
project's single line that names the file, the entry and the field::

    p.yaml: personality 2 ('Beta'): field 'min_confidence': must be a number in [0, 1], got 1.5
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from rawe_cli import durations, levels
from rawe_cli.durations import Duration, parse_duration
from rawe_cli.levels import Level, parse_level


@dataclass(frozen=True, slots=True)
class Kind:
    """Annotation marker: what a field holds, for the documentation and `rawe tune`'s writer
    ("duration": bars or time, a Duration; "time": float seconds; "level": a Level)."""

    name: str


# -- scalars: YAML's types are taken as they are ("1.5" is not a number, 1 is not true) -----

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Whole = Annotated[int, Field(strict=True)]
Flag = Annotated[bool, Field(strict=True)]
Text = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]


# -- lists of names: a YAML list, or one string "AAPL, MSFT NVDA" ----------------------------

def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return value


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(items)) != len(items):
        raise ValueError("has duplicate items")
    return items


def name_list(items_schema: dict[str, Any]) -> Any:
    """A non-empty tuple of distinct names; in YAML a list or a comma/space separated string."""
    array = {"type": "array", "items": items_schema, "minItems": 1, "uniqueItems": True}
    return (BeforeValidator(_split), Field(min_length=1), AfterValidator(_unique),
            WithJsonSchema({"anyOf": [array, {"type": "string", "minLength": 1,
                                              "description": "names separated by commas or "
                                              "spaces"}]}))


Names = Annotated[tuple[Text, ...], *name_list({"type": "string", "minLength": 1})]


# -- durations and levels: the grammars of durations.py and levels.py -------------------------

def _nocase(word: str) -> str:
    """A regex for `word` in any case (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def _number_with(units: list[str]) -> str:
    alternatives = "|".join(_nocase(u) for u in sorted(units, key=lambda u: (-len(u), u)))
    return rf"^\s*{durations.NUMBER}\s*(?:{alternatives})?\s*$"


TIME_PATTERN = _number_with(list(durations.UNIT_SECONDS))
DURATION_PATTERN = _number_with([*durations.UNIT_SECONDS, *durations.BAR_UNITS])
LEVEL_PATTERN = _number_with(list(levels.SUFFIXES))


def _duration_validator(*, bars: bool, positive: bool) -> Any:
    def check(value: Any) -> Any:
        d = parse_duration(value, allow_bars=bars)
        if positive and d.value <= 0:
            raise ValueError(f"must be a duration > 0 ({durations.EXAMPLES}), got {value!r}")
        return d if bars else d.value
    return PlainValidator(check)


def _duration_schema(*, bars: bool, positive: bool) -> WithJsonSchema:
    low = {"exclusiveMinimum": 0} if positive else {"minimum": 0}
    text = ("bars (12b, 12 bars) or a time (90s, 30m, 4h, 2d, 1w)" if bars
            else "a time (90s, 30m, 4h, 2d, 1w); not bars")
    return WithJsonSchema({"anyOf": [
        {"type": "number", **low, "description": "seconds"},
        {"type": "string", "pattern": DURATION_PATTERN if bars else TIME_PATTERN,
         "description": text + ("; more than 0" if positive else "")},
    ]})


def duration(*, positive: bool) -> Any:
    """A Duration in bars or time ("12b", "30m"; a plain number is seconds)."""
    return Annotated[Duration, Kind("duration"), _duration_validator(bars=True, positive=positive),
                     _duration_schema(bars=True, positive=positive)]


def time_seconds(*, positive: bool) -> Any:
    """Seconds, written as a time ("5m", "1h") or a plain number; bars are refused."""
    return Annotated[float, Kind("time"), _duration_validator(bars=False, positive=positive),
                     _duration_schema(bars=False, positive=positive)]


PositiveDuration = duration(positive=True)
AnyDuration = duration(positive=False)
PositiveTime = time_seconds(positive=True)

PriceLevel = Annotated[
    Level, Kind("level"), PlainValidator(parse_level), WithJsonSchema({"anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
         "description": "a fraction of the entry price (0.02)"},
        {"type": "string", "pattern": LEVEL_PATTERN,
         "description": "a percentage of the entry price (2%) or a multiple of the noise "
                        "over the holding horizon (2.5vol)"},
    ]}),
]


def _timeframe(value: Any) -> str:
    from rawe_cli.timeframe import parse_timeframe

    return str(parse_timeframe(value))  # its ValueError is the one line


BarTimeframe = Annotated[str, Kind("timeframe"), PlainValidator(_timeframe), WithJsonSchema({
    "type": "string", "pattern": r"^\s*\d+\s*[A-Za-z]+\s*$",
    "description": "an Alpaca bar timeframe: 1Min .. 59Min, 1Hour .. 23Hour or 1Day"})]


# -- what the documentation, `config show|init` and `tune` read of a field --------------------

@dataclass(frozen=True, slots=True)
class FieldDoc:
    name: str
    kind: str  # "float" | "int" | "bool" | "str" | "choice" | "list" | "duration" | "time" | ...
    default: Any  # None: required (unless optional)
    description: str
    optional: bool = False  # None allowed


def field_docs(cls: type) -> tuple[FieldDoc, ...]:
    """The fields of a pydantic dataclass, in declaration order."""
    out = []
    for name, info in cls.__pydantic_fields__.items():  # type: ignore[attr-defined]
        marker = next((m for m in info.metadata if isinstance(m, Kind)), None)
        default = None if info.is_required() else info.default
        out.append(FieldDoc(name, marker.name if marker else _kind(info.annotation), default,
                            info.description or "", _optional(info.annotation)))
    return tuple(out)


def _optional(annotation: Any) -> bool:
    return type(None) in get_args(annotation)


def _kind(annotation: Any) -> str:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Literal:
        return "choice"
    if get_origin(annotation) is tuple:
        return "list"
    if args and annotation not in (int, float, bool, str):
        return _kind(args[0])
    return {int: "int", float: "float", bool: "bool", str: "str"}.get(annotation, "value")


def _choices(annotation: Any) -> tuple[str, ...]:
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation):
        found = _choices(arg)
        if found:
            return found
    return ()


# -- pydantic's errors as the project's one line ----------------------------------------------

def _bounds_text(info: Any) -> str:
    lo = hi = None
    lo_open = False
    for m in info.metadata:
        if isinstance(m, annotated_types.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Le):
            hi = m.le
    if lo is not None and hi is not None:
        return f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f"a number {'>' if lo_open else '>='} {lo:g}"
    return "a number"


_NUMBER_ERRORS = {"float_type", "int_type", "greater_than", "greater_than_equal", "less_than",
                  "less_than_equal", "int_from_float", "float_parsing", "int_parsing"}


def _field_message(err: Any, info: Any) -> str:
    kind, value, loc = err["type"], err.get("input"), err["loc"]
    if kind == "missing" or (value is None and len(loc) == 1):
        return "is required"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "finite_number":
        return f"must be finite, got {value!r}"
    if kind in ("int_type", "int_from_float") and isinstance(value, float):
        hint = f" (write {int(value)})" if value.is_integer() else ""
        return f"must be a whole number, got {value!r}{hint}"
    if kind in _NUMBER_ERRORS:
        return f"must be {_bounds_text(info)}, got {value!r}"
    if kind == "bool_type":
        return f"must be true or false, got {value!r}"
    if kind == "literal_error":
        choices = _choices(info.annotation)
        if len(loc) > 1:
            return f"unknown item {value!r}; expected any of {', '.join(choices)}"
        return f"must be one of {', '.join(choices)}, got {value!r}"
    if len(loc) > 1:  # an item of a list
        return f"every item must be a non-empty string, got {value!r}"
    if kind in ("too_short", "tuple_type", "list_type"):
        return f"must be a non-empty list, got {value!r}"
    if kind in ("string_type", "string_too_short"):
        return f"must be a non-empty string, got {value!r}"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}, got {value!r}"  # a type not foreseen


def unknown_field(key: Any, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{where}: unknown field {key!r}{hint}; known fields: {', '.join(sorted(known))}"


def one_line(exc: ValidationError, cls: type, where: str) -> str:
    """The first error of `exc` (unknown fields first: they are usually typos) as one line."""
    fields = cls.__pydantic_fields__  # type: ignore[attr-defined]
    errors = exc.errors(include_url=False)
    for err in errors:
        if err["type"] in ("unexpected_keyword_argument", "extra_forbidden", "invalid_key"):
            return unknown_field(err["loc"][0], list(fields), where)
    err = errors[0]
    if not err["loc"]:  # the whole entry: a check across fields
        return f"{where}: {err['ctx']['error'] if 'ctx' in err else err['msg']}"
    name = err["loc"][0]
    return f"{where}: field '{name}': {_field_message(err, fields[name])}"


# -- JSON Schema, for editors -----------------------------------------------------------------

# Draft 7: the newest the YAML language server (VS Code's YAML extension) fully supports.
JSON_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of one entry (a pydantic dataclass): every field with its description,
    bounds and default; unknown fields refused. Without pydantic's generated titles ("Fee
    Bps"), which an editor would show instead of the field's name."""
    from pydantic import TypeAdapter
    from pydantic.json_schema import GenerateJsonSchema

    class WithoutTitles(GenerateJsonSchema):
        def field_title_should_be_set(self, schema: Any) -> bool:
            return False

        def encode_default(self, dft: Any) -> Any:
            # as a file writes them: 3b, 3vol
            if isinstance(dft, Duration | Level):
                return str(dft)
            return super().encode_default(dft)

    out = TypeAdapter(cls).json_schema(schema_generator=WithoutTitles)
    out.pop("title", None)
    return out
