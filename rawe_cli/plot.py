"""`--plot FILE.png`: equity curve(s) and every agent's weight over time (matplotlib).

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
from typing import TYPE_CHECKING

from rawe_cli.errors import RaweError, UsageError

if TYPE_CHECKING:
    from rawe_cli.backtest import BacktestResult

INSTALL_HINT = ("--plot needs matplotlib, which is not installed: "
                "pip install 'rawe-cli[plot]' (or pip install matplotlib)")


def check_plot_target(path: Path) -> None:
    """Fail before the run: matplotlib missing, or nowhere to write."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RaweError(INSTALL_HINT) from None
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--plot {path}: directory {parent} does not exist")
    if path.is_dir():
        raise UsageError(f"--plot {path}: is a directory")


def save_plot(path: Path, equity_runs: Sequence[BacktestResult], weights_run: BacktestResult
              ) -> None:
    """Top: equity of each run. Bottom: `weights_run`'s agent weights (step lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def dt(ts: float) -> datetime:
        return datetime.fromtimestamp(ts, UTC)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    for run in equity_runs:
        if run.times:
            top.plot([dt(t) for t in run.times], run.equity[1:], label=run.label, lw=1)
    top.set_ylabel("equity ($)")
    top.set_title("Equity" if len(equity_runs) == 1 else "Equity by run")
    top.grid(alpha=0.3)
    if len(equity_runs) > 1:
        top.legend(fontsize=7, loc="upper left")
    end = weights_run.times[-1] if weights_run.times else None
    for name, hist in weights_run.weights.items():
        if not hist:
            continue
        xs = [dt(t) for t, _ in hist]
        ys = [w for _, w in hist]
        if end is not None:
            xs.append(dt(end))
            ys.append(ys[-1])
        bottom.step(xs, ys, where="post", label=name, lw=1)
    bottom.set_ylabel("weight")
    bottom.set_title(f"Agent weights ({weights_run.label})")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=7, loc="upper left", ncol=2)
    fig.autofmt_xdate()
    fig.tight_layout()
    # Write beside the target, then rename: a failed save leaves no half-written file.
    fd, tmp = tempfile.mkstemp(prefix=".rawe-plot-", suffix=".png",
                               dir=str(path.parent if str(path.parent) else "."))
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=110)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; give it a file's usual mode
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
