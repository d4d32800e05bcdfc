"""`--plot`: the format follows the extension (or is refused), a labelled UTC time axis,
legends outside the lines, one panel per regime for the per-regime schemes; replay data with
a BOM, and the hint for an empty narratives file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rawe_cli.app.backtest import run_backtest
from rawe_cli.app.runtime import world_params
from rawe_cli.config import Settings, load_personalities, pick_agents
from rawe_cli.feeds.scenarios import scenario_ticks
from tests.conftest import rawe_cmd

pytest.importorskip("matplotlib")


def rawe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(rawe_cmd(*args), capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.mark.parametrize(("name", "magic"), [("bt.jpg", b"\xff\xd8\xff"),
                                             ("bt.svg", b"<?xml"), ("bt.pdf", b"%PDF")])
def test_the_extension_picks_the_format(tmp_path: Path, name: str, magic: bytes) -> None:
    out = tmp_path / name
    proc = rawe("backtest", "--ticks", "300", "--plot", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left


@pytest.mark.parametrize(("name", "needle"), [
    ("bt.txt", "matplotlib cannot write '.txt' files; use .png, .svg, .pdf, .jpg"),
    ("bt", "no file extension"),
])
def test_an_extension_matplotlib_cannot_write_is_refused_first(tmp_path: Path, name: str,
                                                               needle: str) -> None:
    proc = rawe("backtest", "--ticks", "300", "--plot", str(tmp_path / name))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert needle in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def _result(scheme: str, ticks: int = 1500):  # type: ignore[no-untyped-def]
    s = Settings(scheme=scheme, seed=11)
    agents = pick_agents(load_personalities(None), 5, 11)
    return run_backtest(scenario_ticks("regime-switching", world_params(s), ticks), s, agents)


def test_per_regime_weights_get_a_panel_each_and_legends_sit_outside() -> None:
    import matplotlib.pyplot as plt

    from rawe_cli.ui.plot import figure

    result = _result("regime")
    regimes = sorted({r for per in result.regime_scores.values() for r in per})
    assert regimes and result.regimes
    fig = figure([result], result)
    try:
        axes = fig.axes
        assert len(axes) == 1 + len(regimes)
        assert axes[-1].get_xlabel() == "time (UTC)"
        for ax, reg in zip(axes[1:], regimes, strict=True):
            assert f"'{reg}' regime" in ax.get_title()
        fig.canvas.draw()
        for ax in axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            box = legend.get_window_extent()
            assert box.x0 >= ax.get_window_extent().x1  # right of the plotting area
    finally:
        plt.close(fig)


def test_a_plain_scheme_keeps_one_weights_panel() -> None:
    import matplotlib.pyplot as plt

    from rawe_cli.ui.plot import figure

    result = _result("hedge", 600)
    fig = figure([result], result)
    try:
        assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "weight"
        assert fig.axes[-1].get_xlabel() == "time (UTC)"
    finally:
        plt.close(fig)


def _write_data(d: Path, *, bom: bool, events: bool) -> None:
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    for i in range(60):
        price = 100 + (i % 7) * 0.1
        rows.append(f"2026-01-02T14:{30 + i // 60:02d}:{i % 60:02d}Z,AAPL,{price},{price},"
                    f"{price},{price},100")
    text = "\r\n".join(rows) + "\r\n"  # as Excel writes it
    (d / "prices.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    lines = [json.dumps({"timestamp": "2026-01-02T14:30:05Z", "narrative_id": "n",
                         "assets": ["AAPL"], "intensity": 0.9, "sentiment": 0.6})] if events \
        else []
    (d / "narratives.jsonl").write_bytes((b"\xef\xbb\xbf" if bom else b"")
                                         + "\n".join(lines).encode())


def test_a_csv_with_a_bom_from_excel_loads(tmp_path: Path) -> None:
    _write_data(tmp_path, bom=True, events=True)
    proc = rawe("backtest", "--data", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"]["bars"] == 60 and doc["source"]["events"] == 1
    assert "notes" not in doc["source"]


def test_an_empty_narratives_file_gets_a_hint(tmp_path: Path) -> None:
    _write_data(tmp_path, bom=False, events=False)
    proc = rawe("backtest", "--data", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "rawe: note:" in proc.stderr and "has no events" in proc.stderr
    assert json.loads(proc.stdout)["source"]["notes"]


def test_a_latin1_csv_is_one_line_naming_the_place(tmp_path: Path) -> None:
    _write_data(tmp_path, bom=False, events=True)
    data = (tmp_path / "prices.csv").read_bytes().replace(b"AAPL", b"\xc9AAPL", 1)
    (tmp_path / "prices.csv").write_bytes(data)
    proc = rawe("backtest", "--data", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"rawe: error: {tmp_path / 'prices.csv'} line 2, column 22: "
                                   "not UTF-8 text (byte 0xc9); save the file as UTF-8")
