"""`rawe config schema`: a valid JSON Schema that agrees with what the loader accepts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rawe_cli.config import (
    PERSONALITY_FIELDS,
    SETTINGS_FIELDS,
    load_personalities,
    load_settings,
    personalities_schema,
    settings_schema,
)
from rawe_cli.errors import ConfigError
from tests.conftest import ROOT, rawe_cmd

SHIPPED = ROOT / "rawe_cli" / "personalities" / "default.yaml"


def validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    """Draft 7, as the schema declares (the YAML language server's)."""
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)  # the schema itself is valid
    return jsonschema.Draft7Validator(schema)


def schema_errors(schema: dict[str, Any], doc: Any) -> list[str]:
    return [e.message for e in validator(schema).iter_errors(doc)]


def test_the_command_prints_both_schemas_as_json() -> None:
    for args, expected in ((["config", "schema"], settings_schema()),
                           (["config", "schema", "--personalities"], personalities_schema())):
        proc = subprocess.run(rawe_cmd(*args), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert json.loads(proc.stdout) == expected
        validator(expected)


@pytest.mark.parametrize("path", [*sorted((ROOT / "examples").glob("*.yaml")), SHIPPED],
                         ids=lambda p: p.name)
def test_the_shipped_files_validate(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema = personalities_schema() if "personalities" in doc else settings_schema()
    assert schema_errors(schema, doc) == []


def test_a_starter_file_validates(tmp_path: Path) -> None:
    out = tmp_path / "rawe.yaml"
    subprocess.run(rawe_cmd("config", "init", str(out)), check=True, capture_output=True,
                   timeout=60)
    assert schema_errors(settings_schema(), yaml.safe_load(out.read_text())) == []


def test_every_field_has_its_description_and_default() -> None:
    props = settings_schema()["properties"]
    assert list(props) == [f.name for f in SETTINGS_FIELDS]
    for f in SETTINGS_FIELDS:
        assert props[f.name]["description"] == f.description != ""
        assert "default" in props[f.name]
    assert props["window"]["default"] == "3b" and props["tick_seconds"]["default"] == 5.0
    entry = personalities_schema()["definitions"]["Personality"]
    assert list(entry["properties"]) == [f.name for f in PERSONALITY_FIELDS]
    assert entry["required"] == ["name"] and entry["additionalProperties"] is False
    for f in PERSONALITY_FIELDS:
        assert entry["properties"][f.name]["description"] == f.description != ""
    assert entry["properties"]["stop_loss"]["default"] == "3vol"


def test_durations_and_levels_are_a_number_or_a_string_of_the_grammar() -> None:
    window = settings_schema()["properties"]["window"]["anyOf"]
    assert {branch["type"] for branch in window} == {"number", "string"}
    assert all(branch["description"] for branch in window)


# Settings files on which the schema and the loader must agree (the loader also checks what a
# schema cannot say: min_weight <= max_weight, a positive "0b", names unique in the file).
SETTINGS_CASES: list[tuple[str, bool]] = [
    ("seed: 3\nwindow: 3b\ntick_seconds: 5m\n", True),
    ("window: 12 bars\nnarrative_half_life: 2H\nsignal_cooldown: 0\n", True),
    ("symbols: AAPL, MSFT\nthreshold: null\nthreshold_share: 0.4\n", True),
    ("ledger_retention: 2d\nclock_tolerance: 90\nseed: 2\n", True),
    ("treshold: 1\n", False),  # unknown field
    ("threshold: -1\n", False),
    ("threshold_share: 1.5\n", False),
    ("fee_bps: '1.5'\n", False),  # a string is not a number
    ("seed: 2.5\n", False),
    ("size: true\n", False),
    ("scheme: oracle\n", False),
    ("window: 5x\n", False),  # no such unit
    ("window: 0\n", False),
    ("tick_seconds: 3b\n", False),  # the bar size is a time, not bars
    ("symbols: []\n", False),
    ("symbols: [A, A]\n", False),
    ("max_open_positions: 0\n", False),
]


@pytest.mark.parametrize(("text", "good"), SETTINGS_CASES, ids=lambda x: str(x)[:30])
def test_the_settings_schema_agrees_with_the_loader(text: str, good: bool,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert (schema_errors(settings_schema(), yaml.safe_load(text)) == []) is good
    if good:
        load_settings(path)
    else:
        with pytest.raises(ConfigError):
            load_settings(path)


PERSONALITY_CASES: list[tuple[str, bool]] = [
    ("personalities:\n  - name: A\n", True),
    ("- name: A\n  holding_horizon: 40b\n  stop_loss: 2%\n  take_profit: 0.05\n", True),
    ("personalities:\n  - name: A\n    stop_loss: 2.5 VOL\n    cooldown: 15\n", True),
    ("personalities:\n  - name: A\n    trusts: narrative_leads\n", True),
    ("personalities:\n  - description: no name\n", False),
    ("personalities:\n  - name: A\n    stop_los: 0.1\n", False),
    ("personalities:\n  - name: A\n    min_confidence: 1.5\n", False),
    ("personalities:\n  - name: A\n    trusts: [rumours]\n", False),
    ("personalities:\n  - name: A\n    stance: sideways\n", False),
    ("personalities:\n  - name: A\n    stop_loss: 3x\n", False),
    ("personalities:\n  - name: A\n    stop_loss: 2\n", False),  # a fraction above 1
    ("personalities:\n  - name: A\n    size_by_confidence: 1\n", False),
    ("personalities:\n  - name: A\n    holding_horizon: 0\n", False),
    ("personalities: []\n", False),
    ("personalities: {name: A}\n", False),
]


@pytest.mark.parametrize(("text", "good"), PERSONALITY_CASES, ids=lambda x: str(x)[:40])
def test_the_personalities_schema_agrees_with_the_loader(text: str, good: bool,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert (schema_errors(personalities_schema(), yaml.safe_load(text)) == []) is good
    if good:
        load_personalities(path)
    else:
        with pytest.raises(ConfigError):
            load_personalities(path)


def test_a_bad_file_is_rejected_naming_the_field() -> None:
    errors = schema_errors(settings_schema(), {"window": "5x", "treshold": 1})
    assert any("treshold" in e for e in errors) and len(errors) == 2


JSON_SCHEMA_WORDS = {"definitions", "$ref", "$schema", "additionalProperties", "anyOf", "default",
                     "description", "enum", "exclusiveMinimum", "items", "maximum", "minItems",
                     "minLength", "minimum", "pattern", "properties", "required", "title",
                     "type", "uniqueItems"}


def keywords(node: Any) -> set[str]:
    """The keywords used in a schema (names of properties and definitions are not keywords)."""
    if isinstance(node, list):
        return set().union(*(keywords(n) for n in node))
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key in ("properties", "definitions"):
            found |= set().union(*(keywords(v) for v in value.values()))
        elif key != "default":
            found |= keywords(value)
    return found


def test_only_json_schema_keywords() -> None:
    """A bound pydantic could not translate would show as 'ge' or 'gt', which JSON Schema
    ignores: an editor would then accept what the loader refuses."""
    assert keywords(settings_schema()) <= JSON_SCHEMA_WORDS
    assert keywords(personalities_schema()) <= JSON_SCHEMA_WORDS
