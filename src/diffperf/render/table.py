"""One table renderer for every command: rich tables on a terminal, plain aligned text otherwise.

CI logs are not terminals: there the same rows come out as plain columns (no box drawing, no
colour codes) that stay readable in any log viewer and grep well. ``NO_COLOR`` and
``TERM=dumb`` are honoured by rich itself; ``DIFFPERF_PLAIN=1`` forces plain text.
"""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass, field
from typing import TextIO, Union

from diffperf.stats.status import Status

__all__ = ["Cell", "Column", "Table", "STATUS_STYLES", "WIDTH", "markdown_section", "markdown_table", "plain_text", "render", "seconds",
           "signed_change", "status_cell", "use_rich", "wrapped"]

WIDTH = 120
"""The widest line diffperf prints in a terminal or CI log by default (a 120-column terminal)."""

#: A cell: its text, or ``(text, rich style)``. A newline in the text separates parts (say a value
#: and its interval) that a rich table stacks and plain text joins with a space.
Cell = Union[str, tuple]

STATUS_STYLES = {
    Status.SLOWER: "bold red",
    Status.LOWER: "bold red",
    Status.REGRESSED: "bold red",
    Status.ERROR: "bold red",
    Status.FASTER: "green",
    Status.HIGHER: "green",
    Status.IMPROVED: "green",
    Status.NO_CHANGE: "",
    Status.OK: "",
    Status.INCONCLUSIVE: "yellow",
    Status.UNTESTED: "dim",
    Status.NOT_COMPARABLE: "dim",
    Status.UNCHECKED: "dim",
    "not gated": "dim",  # the report's rows of a run judged against nothing
}


@dataclass
class Column:
    header: str
    align: str = "left"  # "left" | "right"
    wrap: bool = True  # False: never fold this column on a narrow terminal (verdicts)
    min_width: int | None = None  # narrowest a rich table may squeeze it


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # printed under the table, one line each


def seconds(value: float) -> str:
    """A duration in a readable unit: '180.6 ms', '12.30 s', '45.0 µs'."""
    if value >= 10:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.1f} µs"


def signed_change(ratio: float) -> str:
    """A ratio as a signed percentage change: 1.2 -> '+20.0%'."""
    return f"{(ratio - 1) * 100:+.1f}%"


def status_cell(status: str) -> Cell:
    return (status, STATUS_STYLES.get(status, ""))


def use_rich(stream: TextIO) -> bool:
    """Rich output only on an interactive terminal (and not when DIFFPERF_PLAIN is set)."""
    if os.environ.get("DIFFPERF_PLAIN"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def render(tables: list[Table], stream: TextIO | None = None, rich: bool | None = None) -> None:
    """Print ``tables`` to ``stream`` (default stdout); ``rich=None`` decides by :func:`use_rich`."""
    stream = stream or sys.stdout
    if rich is None:
        rich = use_rich(stream)
    if rich:
        _render_rich(tables, stream)
    else:
        stream.write("\n\n".join(plain_text(table) for table in tables) + "\n")
        stream.flush()


def wrapped(line: str, indent: str = "", width: int = WIDTH) -> list[str]:
    """``line`` folded at word boundaries into lines of at most ``width`` columns; continuations indented 2 more."""
    return textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=False, break_on_hyphens=False) or [indent.rstrip()]


def plain_text(table: Table) -> str:
    """The table as aligned plain text: title, header, dashes, rows, notes (folded at :data:`WIDTH`)."""
    header = [column.header for column in table.columns]
    rows = [[_text(cell) for cell in row] for row in table.rows]
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            cell.rjust(width) if column.align == "right" else cell.ljust(width)
            for cell, width, column in zip(cells, widths, table.columns)
        ]
        return "  ".join(parts).rstrip()

    lines = [table.title] if table.title else []
    if rows:
        lines += [line(header), "  ".join("-" * width for width in widths)]
        lines += [line(row) for row in rows]
    else:
        lines.append("(no rows)")
    lines += [folded for note in table.notes for folded in wrapped(note, "  ")]
    return "\n".join(lines)


def markdown_section(heading: str, tables: list[Table]) -> str:
    """Tables as one Markdown section under a level-2 ``heading`` (a job summary's part)."""
    return f"## {heading}\n\n" + "\n\n".join(markdown_table(table) for table in tables) + "\n"


def markdown_table(table: Table) -> str:
    """The table as GitHub-flavoured Markdown: bold title, a pipe table, notes as a list."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "<br>")

    lines = [f"**{cell(table.title)}**", ""] if table.title else []
    if table.rows:
        lines.append("| " + " | ".join(cell(column.header) for column in table.columns) + " |")
        lines.append("|" + "|".join("---:" if column.align == "right" else "---" for column in table.columns) + "|")
        lines += ["| " + " | ".join(cell(_text(value, stacked=True)) for value in row) + " |" for row in table.rows]
    else:
        lines.append("(no rows)")
    if table.notes:
        lines += [""] + [f"- {cell(note)}" for note in table.notes]
    return "\n".join(lines)


def _render_rich(tables: list[Table], stream: TextIO) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(file=stream, highlight=False)
    for number, table in enumerate(tables):
        if number:
            console.print()
        rich_table = RichTable(title=table.title or None, title_justify="left", box=box.SIMPLE_HEAVY, pad_edge=False,
                               title_style="bold")
        for column in table.columns:
            rich_table.add_column(column.header, justify=column.align, no_wrap=not column.wrap,
                                  min_width=column.min_width,
                                  overflow="fold" if column.wrap else "ellipsis")
        # Stack a value over its interval only when the one-line layout does not fit the terminal.
        plain_rows = plain_text(table).splitlines()[1 if table.title else 0:][:len(table.rows) + 2]
        one_line = max((len(line) for line in plain_rows), default=0)
        stacked = console.width < one_line + 2 * len(table.columns)
        for row in table.rows:
            rich_table.add_row(*(Text(_text(cell, stacked=stacked), style=_style(cell)) for cell in row))
        if table.rows:
            console.print(rich_table)
        else:
            console.print(Text(table.title, style="bold"))
            console.print("(no rows)")
        for note in table.notes:
            console.print(Text(f"  {note}", style="dim"))


def _text(cell: Cell, stacked: bool = False) -> str:
    text = str(cell[0]) if isinstance(cell, tuple) else str(cell)
    return text if stacked else text.replace("\n", " ")


def _style(cell: Cell) -> str:
    return str(cell[1]) if isinstance(cell, tuple) and len(cell) > 1 and cell[1] else ""
