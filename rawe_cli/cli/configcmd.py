"""`rawe config show|init|schema`: the effective settings, a starter file, the JSON Schema."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from rawe_cli.cli.options import ConfigOpt, JsonOpt
from rawe_cli.errors import RaweError, UsageError

config_app = typer.Typer(help="See the effective settings, write a starter settings file, or "
                         "print the files' JSON Schema for an editor.", no_args_is_help=True)

# Environment variables RAWE reads (secrets are shown as set / not set, never their value).
ENV_VARS: tuple[tuple[str, str, bool], ...] = (
    ("RAWE_CONFIG", "settings file, when -c is not given", False),
    ("RAWE_REDIS_URL", "Redis URL of the multi-process commands", False),
    ("RAWE_NAMESPACE", "prefix of every Redis key (overrides the file's namespace)", False),
    ("RAWE_SHARDS", "how many sharded engines (overrides the file's shards)", False),
    ("RAWE_BUS_SECRET", "shared secret that signs proposals", True),
    ("RAWE_TZ", "display time zone (--tz)", False),
    ("RAWE_LOG_LEVEL", "log level (--log-level)", False),
    ("RAWE_LOG_FILE", "log file (--log-file)", False),
    ("APCA_API_KEY_ID", "Alpaca key id", True),
    ("APCA_API_SECRET_KEY", "Alpaca secret key", True),
    ("APCA_API_BASE_URL", "Alpaca trading endpoint", False),
    ("APCA_API_DATA_URL", "Alpaca data endpoint", False),
)


def yaml_value(value: Any) -> str:
    """A settings value as YAML that load_settings reads back as the same value."""
    import json

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if text and all(c.isalnum() or c in "/._-" for c in text) and text[0].isalpha():
        return text
    return json.dumps(text)


def json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if value is None or isinstance(value, bool | int | float | str | list):
        return value
    return str(value)


def _file_keys(config: Path) -> set[str]:
    import yaml

    from rawe_cli.textfile import read_text

    data = yaml.safe_load(read_text(config))
    return set(data) if isinstance(data, dict) else set()


@config_app.command("show")
def show(config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """The effective settings (defaults, then the file, then RAWE_NAMESPACE) and where each
    comes from; the environment variables RAWE reads; the .env file loaded."""
    import json

    from rawe_cli.cli.options import settings_from
    from rawe_cli.config import SETTINGS_FIELDS

    shards = os.environ.get("RAWE_SHARDS", "").strip()
    if shards and not shards.isdigit():
        from rawe_cli.errors import UsageError

        raise UsageError(f"RAWE_SHARDS must be a number of shards, got {shards!r}")
    settings = settings_from(config, namespace=os.environ.get("RAWE_NAMESPACE") or None,
                             shards=int(shards) if shards and int(shards) else None)
    in_file = _file_keys(config) if config is not None else set()
    rows = []
    for f in SETTINGS_FIELDS:
        value = getattr(settings, f.name)
        source = "default"
        if f.name in in_file:
            source = str(config)
        if f.name == "namespace" and os.environ.get("RAWE_NAMESPACE"):
            source = "env RAWE_NAMESPACE"
        if f.name == "shards" and shards and int(shards):
            source = "env RAWE_SHARDS"
        rows.append((f.name, value, source))
    env = {name: ("set" if secret and os.environ.get(name) else os.environ.get(name))
           for name, _, secret in ENV_VARS}
    dotenv = os.environ.get("RAWE_DOTENV_LOADED")
    if json_out:
        typer.echo(json.dumps({"config": str(config) if config else None,
                               "settings": {n: json_value(v) for n, v, _ in rows},
                               "sources": {n: s for n, _, s in rows},
                               "env": env, "dotenv": dotenv}, indent=2))
        return
    typer.echo(f"# effective settings ({config or 'no settings file: defaults'})")
    width = max(len(n) + len(yaml_value(v)) for n, v, _ in rows) + 2
    for name, value, source in rows:
        line = f"{name}: {yaml_value(value)}"
        typer.echo(f"{line:<{width}}  # {source}")
    typer.echo("\n# environment")
    for name, what, _ in ENV_VARS:
        value = env[name]
        typer.echo(f"# {name}={value if value is not None else '(not set)'}  ({what})")
    typer.echo(f"# .env: {dotenv or 'none found'}")


@config_app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="Where to write it.")] = Path("rawe.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")
                     ] = False,
) -> None:
    """Write a starter settings file: every field with its default and what it means."""
    from rawe_cli.config import SETTINGS_FIELDS, Settings, load_settings

    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name, e.g. {path}/rawe.yaml")
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    defaults = Settings()
    out = ["# RAWE settings: `rawe run -c THIS_FILE` (or RAWE_CONFIG=THIS_FILE).",
           "# Every field is optional: delete a line to keep its default. Flags override.",
           "# Durations: bars (3b) or time (15s, 5m, 4h); a plain number is seconds.", ""]
    for f in SETTINGS_FIELDS:
        out.append(f"# {f.description}")
        out.append(f"{f.name}: {yaml_value(getattr(defaults, f.name))}")
        out.append("")
    try:
        path.write_text("\n".join(out), encoding="utf-8")
    except OSError as exc:
        raise RaweError(f"{path}: cannot write: {exc.strerror}") from None
    load_settings(path)  # what was written reads back
    typer.echo(f"wrote {path} ({len(SETTINGS_FIELDS)} fields, all at their defaults)")


@config_app.command("schema")
def schema(
    personalities: Annotated[bool, typer.Option(
        "--personalities", help="The schema of a personalities file instead.")] = False,
) -> None:
    """Print the JSON Schema of the settings file (or of a personalities file), for an editor:
    save it, then put `# yaml-language-server: $schema=rawe.schema.json` atop the YAML file."""
    import json

    from rawe_cli.config import personalities_schema, settings_schema

    doc = personalities_schema() if personalities else settings_schema()
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
