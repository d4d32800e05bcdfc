"""`rawe` run in the test's own process, through the real entry point."""

from __future__ import annotations

import sys

import pytest


def rawe(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
         ) -> tuple[int, str, str]:
    """Run `rawe ARGS` (one-line errors included); returns code, stdout, stderr."""
    from rawe_cli.cli.app import main

    monkeypatch.setattr(sys, "argv", ["rawe", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
