"""The README's settings and personality tables say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rawe_cli.config import PERSONALITY_FIELDS, SETTINGS_FIELDS
from rawe_cli.schema import FieldDoc

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _default(f: FieldDoc) -> str:
    v = f.default
    if v is None:
        return "unset" if f.optional else "required"
    if isinstance(v, tuple):
        return "[" + ", ".join(v) + "]"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _rows() -> dict[str, str]:
    out: dict[str, str] = {}
    for m in re.finditer(r"^\| `([a-z_]+)` \| ([^|]+) \|", README, re.MULTILINE):
        out.setdefault(m.group(1), m.group(2).strip())
    return out


@pytest.mark.parametrize("f", SETTINGS_FIELDS + PERSONALITY_FIELDS, ids=lambda f: f.name)
def test_every_field_is_in_the_readme_with_its_default(f: FieldDoc) -> None:
    rows = _rows()
    assert f.name in rows, f"README has no row for `{f.name}`"
    assert rows[f.name] == _default(f)
