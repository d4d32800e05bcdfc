"""Reading the user's text files: UTF-8, a byte-order mark accepted, one-line errors.

Excel and some Windows editors write UTF-8 with a BOM; that is accepted and dropped. Any other
encoding (a Latin-1 'é') is refused with the line and column of the first bad byte, instead
of a UnicodeDecodeError traceback.
"""

from __future__ import annotations

from pathlib import Path

from rawe_cli.errors import RaweError

BOM = b"\xef\xbb\xbf"


def not_utf8(path: Path | str, data: bytes, exc: UnicodeDecodeError) -> str:
    line = data.count(b"\n", 0, exc.start) + 1
    col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return (f"{path} line {line}, column {col}: not UTF-8 text (byte 0x{data[exc.start]:02x});"
            " save the file as UTF-8")


def read_text(path: Path | str, error: type[RaweError] = RaweError) -> str:
    """The file's text, decoded as UTF-8 (with or without a BOM)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p}: no such file") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a file") from None
    except OSError as exc:
        raise error(f"{p}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(not_utf8(p, data, exc)) from None


def check_utf8(path: Path | str, error: type[RaweError] = RaweError) -> None:
    """Raise `error` (one line) unless the file exists and is UTF-8 text."""
    read_text(path, error)
