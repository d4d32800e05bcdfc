"""Tables that fit: choose, shorten and size columns for a width, before Rich lays them out.

Rich shrinks columns to fit a narrow terminal, down to zero width, and cuts numbers
(`100,02…`). Here every column says how important it is and how it may shorten, and the
table is planned for the width it gets:

1. every column at its widest form, each at least as wide as it was in earlier frames
   (`widths`, kept by the caller), so that widths do not change from frame to frame;
2. text columns that have shorter forms (names: "The Momentum Chaser #2" -> "Momentum
   Chaser #2" -> "Chaser #2") take them, one step at a time;
3. the least important columns are dropped, one at a time;
4. last, text columns marked `cut` are cut with an ellipsis, down to their `min_width`.

Numbers are never cut: a number column is as wide as its widest cell, or it is dropped.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich import box
from rich.table import Table
from rich.text import Text

Cell = str | Text
GAP = 2  # columns between two columns (right padding + the box's divider)


def cell_width(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else Text(cell).cell_len


@dataclass(slots=True)
class Column:
    """A column: its header and cells, in one or more forms (widest first)."""

    key: str
    header: str
    forms: list[list[Cell]]  # forms[0] is the widest; every form has one cell per row
    priority: int = 0  # 0: always shown; the highest is dropped first
    justify: str = "left"
    style: str = ""
    cut: bool = False  # text that may be cut with an ellipsis as a last resort
    min_width: int = 4
    form: int = 0
    width: int = 0

    @classmethod
    def of(cls, key: str, header: str, cells: Sequence[Cell], **kw: object) -> Column:
        return cls(key, header, [list(cells)], **kw)  # type: ignore[arg-type]

    def natural(self, form: int | None = None) -> int:
        cells = self.forms[self.form if form is None else form]
        return max([cell_width(self.header), *(cell_width(c) for c in cells)])


@dataclass(slots=True)
class Plan:
    columns: list[Column]
    dropped: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return total_width(self.columns)


def total_width(columns: Sequence[Column]) -> int:
    return sum(c.width for c in columns) + GAP * max(0, len(columns) - 1)


def plan(columns: Sequence[Column], width: int, widths: dict[str, int] | None = None) -> Plan:
    """Pick forms, drop columns, then cut text so that the table is at most `width` wide.

    `widths` remembers each column's width across frames (updated in place): a column
    never gets narrower than it was, unless it must to fit.
    """
    memo = widths if widths is not None else {}
    cols = list(columns)
    for c in cols:
        c.width = max(c.natural(), memo.get(f"{c.key}/{c.form}", 0))
    dropped: list[str] = []

    def fits() -> bool:
        return total_width(cols) <= width

    # 2. shorter forms of text columns (the one that saves most first)
    while not fits():
        best, saving = None, 0
        for c in cols:
            if c.form + 1 < len(c.forms):
                save = c.width - max(c.natural(c.form + 1),
                                     memo.get(f"{c.key}/{c.form + 1}", 0))
                if save > saving:
                    best, saving = c, save
        if best is None:
            break
        best.form += 1
        best.width = max(best.natural(), memo.get(f"{best.key}/{best.form}", 0))
    # 3. drop the least important columns
    while not fits():
        droppable = [c for c in cols if c.priority > 0]
        if not droppable:
            break
        victim = max(droppable, key=lambda c: (c.priority, cols.index(c)))
        cols.remove(victim)
        dropped.append(victim.key)
    # 4. cut text
    for c in cols:
        if fits():
            break
        if c.cut:
            c.width = max(c.min_width, c.width - (total_width(cols) - width))
    for c in cols:
        memo[f"{c.key}/{c.form}"] = max(memo.get(f"{c.key}/{c.form}", 0), c.width)
    return Plan(cols, dropped)


def build(p: Plan, rows: int | None = None, *, title: str | None = None,
          caption: str | None = None) -> Table:
    """The planned columns as a Rich table (no outer border, a rule under the header)."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
              expand=False, title=title, title_justify="left", title_style="bold",
              caption=caption, caption_justify="left", caption_style="dim",
              collapse_padding=False)
    for c in p.columns:
        t.add_column(c.header, justify=c.justify, style=c.style or None, width=c.width,
                     min_width=c.width, max_width=c.width, no_wrap=True,
                     overflow="ellipsis" if c.cut else "crop", header_style="bold")
    n = min(len(c.forms[c.form]) for c in p.columns) if p.columns else 0
    for i in range(n if rows is None else min(n, rows)):
        t.add_row(*(c.forms[c.form][i] for c in p.columns))
    return t


def pack(items: Sequence[Cell], width: int, sep: str = "  ") -> list[Text]:
    """Items laid out on as few lines as `width` allows, never split inside an item."""
    lines: list[Text] = []
    line = Text()
    for item in items:
        piece = item if isinstance(item, Text) else Text(item)
        if line.cell_len and line.cell_len + len(sep) + piece.cell_len > width:
            lines.append(line)
            line = Text()
        if line.cell_len:
            line.append(sep)
        line.append_text(piece)
    if line.cell_len:
        lines.append(line)
    return lines
