"""`rawe run` in a real pseudo-terminal of 80x24: the dashboard as a user's terminal shows it
(pyte emulates the terminal), Ctrl-C, and what is left on the screen afterwards."""

from __future__ import annotations

import re

from tests.pty_screen import PtyRawe

HEADER_CELLS = (r"tick [\d,]+", r"bar \d+s", r"event time 2026-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                r"regime \w+", r"signals [\d,]+", r"proposals [\d,]+", r"decisions [\d,]+",
                r"closed [\d,]+")
AGENT_HEADERS = ("agent", "weight", "P&L", "won/lost", "win rate")
DECISION_HEADERS = ("time UTC", "asset", "dir", "status", "P&L")


def _ready(lines: list[str]) -> bool:
    text = "\n".join(lines)
    m = re.search(r"tick ([\d,]+)", text)
    return (m is not None and int(m.group(1).replace(",", "")) > 20
            and "Collective decisions" in text and "weight" in text)


def test_rawe_run_in_an_80x24_terminal() -> None:
    term = PtyRawe(["run", "--agents", "5", "--speed", "400"], cols=80, rows=24)
    try:
        lines = term.wait_screen(_ready, timeout=60)
    finally:
        code = term.interrupt()
    text = "\n".join(lines)
    head = " ".join(lines[:2])
    for cell in HEADER_CELLS:  # no header cell is empty
        assert re.search(cell, head), (cell, text)
    agents_head = next(ln for ln in lines if ln.startswith("agent "))
    for h in AGENT_HEADERS:
        assert h in agents_head, (h, text)
    if "none yet" not in text:
        dec_head = next(ln for ln in lines if ln.startswith("time UTC"))
        for h in DECISION_HEADERS:
            assert h in dec_head, (h, text)
    assert all(len(ln.rstrip()) <= 80 for ln in lines)
    assert not re.search(r"[\d.,]…|…[\d.,]", text), text
    assert "+" not in agents_head and "more agents" not in text  # all five fit
    assert code == 130  # Ctrl-C: a clean stop, then 130
    after = term.text().rsplit("\x1b[?1049l", 1)[-1]  # printed after the live view closed
    assert after.count("Summary") == 1 and "RAWE collective" not in after, after
    assert "nothing was saved" in after
