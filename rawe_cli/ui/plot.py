"""`--plot FILE`: equity curve(s) and the agents' weights over time (matplotlib).

The format follows the file's extension (.png, .svg, .pdf, .jpg, ...): an extension
matplotlib cannot write as asked is refused before anything runs. The time axis is labelled
with its zone (UTC), legends sit outside the plotting area, and with a per-regime scheme
(regime, meta) the weights are drawn one panel per regime (each agent's score in that
regime), with the regimes shaded under the equity curve, instead of one line that jumps
whenever the regime does.

matplotlib is an optional extra (`pip install 'rawe-cli[plot]'`); without it the command
stops before running, with one line saying how to install it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rawe_cli.errors import RaweError, UsageError

if TYPE_CHECKING:
    from rawe_cli.app.backtest import BacktestResult

INSTALL_HINT = ("--plot needs matplotlib, which is not installed: "
                "pip install 'rawe-cli[plot]' (or pip install matplotlib)")
COMMON = (".png", ".svg", ".pdf", ".jpg")
LEGEND_MAX = 12  # more agents than this: the rest are drawn, not named
REGIME_COLOURS = ("#e8f0fb", "#fdeee4", "#eaf6e8", "#f3eafa")


def plot_format(path: Path) -> str:
    """The matplotlib format for `path`'s extension; UsageError if it cannot be written."""
    ext = path.suffix.lower().lstrip(".")
    use = f"use {', '.join(COMMON)}"
    if not ext:
        raise UsageError(f"--plot {path}: no file extension to choose the format by; {use}")
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    if ext not in supported:
        others = ", ".join(f".{e}" for e in sorted(supported) if f".{e}" not in COMMON)
        raise UsageError(f"--plot {path}: matplotlib cannot write '.{ext}' files; {use} "
                         f"(or {others})")
    if ext in ("jpg", "jpeg", "webp"):
        try:
            import PIL  # noqa: F401
        except ImportError:
            raise UsageError(f"--plot {path}: writing .{ext} needs Pillow (pip install "
                             "pillow); or use .png") from None
    return "jpeg" if ext == "jpg" else ext


def check_plot_target(path: Path) -> str:
    """Fail before the run: matplotlib missing, an unknown format, or nowhere to write.
    Returns the format."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RaweError(INSTALL_HINT) from None
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--plot {path}: directory {parent} does not exist")
    if path.is_dir():
        raise UsageError(f"--plot {path}: is a directory")
    return plot_format(path)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _legend(ax: Any, title: str | None = None, extra: Sequence[Any] = ()) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles = [*handles, *extra]
    labels = [*labels, *(h.get_label() for h in extra)]
    if not handles:
        return
    more = len(handles) - LEGEND_MAX
    handles, labels = handles[:LEGEND_MAX], labels[:LEGEND_MAX]
    if more > 0:
        labels[-1] = f"{labels[-1]} (+{more} more not named)"
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
              frameon=False, title=title, title_fontsize=7, borderaxespad=0.0)


def _steps(hist: Sequence[tuple[float, float]], end: float | None) -> tuple[list, list]:
    xs = [_dt(t) for t, _ in hist]
    ys = [w for _, w in hist]
    if end is not None and hist:
        xs.append(_dt(end))
        ys.append(ys[-1])
    return xs, ys


def _shade(ax: Any, regimes: Sequence[tuple[float, str]], end: float | None,
           only: str | None = None) -> dict[str, str]:
    """Shade the regimes (as the classifier saw them) behind a panel, one colour each; with
    `only`, just the spans of that regime."""
    names = sorted({r for _, r in regimes})
    colour = {r: REGIME_COLOURS[i % len(REGIME_COLOURS)] for i, r in enumerate(names)}
    for i, (start, reg) in enumerate(regimes):
        stop = regimes[i + 1][0] if i + 1 < len(regimes) else end
        if stop is not None and stop > start and only in (None, reg):
            ax.axvspan(_dt(start), _dt(stop), color=colour[reg], lw=0, zorder=0)
    return colour


def save_plot(path: Path, equity_runs: Sequence[BacktestResult], weights_run: BacktestResult,
              fmt: str | None = None) -> None:
    """Write the figure to `path`, in the format of its extension."""
    import matplotlib.pyplot as plt

    fmt = fmt or plot_format(path)
    fig = figure(equity_runs, weights_run)
    # Write beside the target, then rename: a failed save leaves no half-written file.
    fd, tmp = tempfile.mkstemp(prefix=".rawe-plot-", suffix=path.suffix,
                               dir=str(path.parent if str(path.parent) else "."))
    os.close(fd)
    try:
        fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; give it a file's usual mode
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def figure(equity_runs: Sequence[BacktestResult], weights_run: BacktestResult) -> Any:
    """Top: equity of each run. Below: `weights_run`'s agent weights (step lines), or with
    per-regime scores, one panel per regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    by_regime = weights_run.scheme in ("regime", "meta") and bool(weights_run.regime_scores)
    regimes = sorted({r for per in weights_run.regime_scores.values() for r in per}
                     ) if by_regime else []
    panels = 1 + (len(regimes) if by_regime else 1)
    fig, axes = plt.subplots(panels, 1, figsize=(12, 3.2 + 2.3 * (panels - 1)), sharex=True,
                             gridspec_kw={"height_ratios": [3] + [2] * (panels - 1)},
                             squeeze=False)
    top, rest = axes[0][0], [a[0] for a in axes[1:]]
    end = weights_run.times[-1] if weights_run.times else None
    colours: dict[str, str] = {}
    if weights_run.regimes:
        colours = _shade(top, weights_run.regimes, end)
    for run in equity_runs:
        if run.times:
            top.plot([_dt(t) for t in run.times], run.equity[1:], label=run.label, lw=1)
    top.set_ylabel("equity ($)")
    top.ticklabel_format(axis="y", style="plain", useOffset=False)
    top.set_title("Equity" if len(equity_runs) == 1 else "Equity by run")
    top.grid(alpha=0.3)
    if len(equity_runs) > 1 or colours:
        _legend(top, extra=[Patch(facecolor=c, label=f"regime: {reg}")
                            for reg, c in colours.items()])
    if by_regime:
        for ax, reg in zip(rest, regimes, strict=True):
            _shade(ax, weights_run.regimes, end, only=reg)
            for name, per in weights_run.regime_scores.items():
                if per.get(reg):
                    xs, ys = _steps(per[reg], end)
                    ax.step(xs, ys, where="post", label=name, lw=1)
            ax.set_ylabel("score")
            ax.set_title(f"Agent scores in the '{reg}' regime ({weights_run.label}; "
                         "the weight while that regime holds)", fontsize=9)
            ax.grid(alpha=0.3)
            _legend(ax)
    else:
        ax = rest[0]
        for name, hist in weights_run.weights.items():
            if hist:
                xs, ys = _steps(hist, end)
                ax.step(xs, ys, where="post", label=name, lw=1)
        ax.set_ylabel("weight")
        ax.set_title(f"Agent weights ({weights_run.label})")
        ax.grid(alpha=0.3)
        _legend(ax)
    bottom = axes[-1][0]
    locator = mdates.AutoDateLocator(tz=UTC)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    bottom.set_xlabel("time (UTC)")
    fig.tight_layout()
    return fig
