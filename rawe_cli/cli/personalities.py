"""`rawe personalities`: list the personalities of a file (or the shipped ones)."""

from __future__ import annotations

import typer

from rawe_cli.cli.options import JsonOpt, PersonalitiesOpt


def personalities(file: PersonalitiesOpt = None, json_out: JsonOpt = False) -> None:
    """List personalities and what they trust, risk and hold."""
    import dataclasses
    import json

    from rich.console import Console
    from rich.table import Table

    from rawe_cli.cli.options import personalities_from

    items = personalities_from(file)
    if json_out:
        typer.echo(json.dumps([dataclasses.asdict(p) for p in items], indent=2))
        return
    t = Table(title=f"Personalities ({file or 'shipped'})", title_justify="left")
    for col in ("name", "trusts", "stance", "min conf", "size", "max risk", "horizon s",
                "stop", "take"):
        t.add_column(col)
    for p in items:
        t.add_row(p.name, ", ".join(p.trusts), p.stance, f"{p.min_confidence:.2f}",
                  f"{p.position_size:.1%}", f"{p.max_risk_score:.2f}",
                  f"{p.holding_horizon:g}", f"{p.stop_loss:.1%}", f"{p.take_profit:.1%}")
    Console().print(t)
    for p in items:
        Console().print(f"[bold]{p.name}[/bold]: {p.description}")


def register(app: typer.Typer) -> None:
    app.command("personalities")(personalities)
