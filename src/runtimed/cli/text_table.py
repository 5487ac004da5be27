"""Tables for the CLI in plain text (rich's box style), without importing rich.

rich costs a command 60 ms to import; these tables are a header, rows, a terminal's
width and a colour per cell. On a terminal the table fits its width (wide columns wrap);
piped, nothing wraps, so every cell stays whole on its line for grep and scripts.
"""

from __future__ import annotations

import os
import sys

from runtimed.cli.common import colour_on, styled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

#: A cell: its text, or (text, style) with a style of ``common.styled``.
Cell = str | tuple[str, str | None]


class Column:
    """A column's header; ``no_wrap`` columns keep their width when the table must shrink."""

    __slots__ = ("header", "no_wrap")

    def __init__(self, header: str, no_wrap: bool = False) -> None:
        self.header = header
        self.no_wrap = no_wrap


class TextTable:
    def __init__(self, *columns: str | Column) -> None:
        self.columns = [c if isinstance(c, Column) else Column(c) for c in columns]
        self.rows: list[list[tuple[str, str | None]]] = []

    def add_row(self, *cells: Cell) -> None:
        self.rows.append([c if isinstance(c, tuple) else (c, None) for c in cells])

    def widths(self, limit: int | None) -> list[int]:
        """Each column's width: its widest cell, shrunk (wrappable columns first, the
        widest each time) until the table fits ``limit`` characters."""
        widths = [len(c.header) for c in self.columns]
        for row in self.rows:
            for i, (text, _) in enumerate(row):
                widths[i] = max(widths[i], *(len(line) for line in text.split("\n")))
        if limit is None:
            return widths
        floor = [min(w, max(len(c.header), 6)) for w, c in zip(widths, self.columns, strict=True)]
        while sum(widths) + 3 * len(widths) + 1 > limit:
            shrinkable = [
                i for i, c in enumerate(self.columns) if not c.no_wrap and widths[i] > floor[i]
            ]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1
        return widths

    def render(self, limit: int | None = None, colour: bool = False) -> str:
        widths = self.widths(limit)

        def line(left: str, fill: str, mid: str, right: str) -> str:
            return left + mid.join(fill * (w + 2) for w in widths) + right

        out = [line("┏", "━", "┳", "┓")]
        header: list[tuple[str, str | None]] = [(c.header, "bold") for c in self.columns]
        out.extend(self._row(header, widths, "┃", colour))
        out.append(line("┡", "━", "╇", "┩"))
        for row in self.rows:
            out.extend(self._row(row, widths, "│", colour))
        out.append(line("└", "─", "┴", "┘"))
        return "\n".join(out)

    @staticmethod
    def _row(
        cells: list[tuple[str, str | None]], widths: list[int], bar: str, colour: bool
    ) -> list[str]:
        wrapped = [wrap(text, w) for (text, _), w in zip(cells, widths, strict=True)]
        height = max(len(lines) for lines in wrapped)
        lines = []
        for n in range(height):
            parts = []
            for (_, style), cell, w in zip(cells, wrapped, widths, strict=True):
                text = cell[n] if n < len(cell) else ""
                parts.append(" " + styled(text, style, colour) + " " * (w - len(text) + 1))
            lines.append(bar + bar.join(parts) + bar)
        return lines


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``: at spaces where it can, else cut."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split(" "):
            candidate = f"{current} {word}" if current else word
            if len(candidate) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            while len(word) > width:
                lines.append(word[:width])
                word = word[width:]
            current = word
        lines.append(current)
    return lines


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit: the terminal's, or $COLUMNS; None when piped (no wrapping)."""
    if (columns := os.environ.get("COLUMNS", "").strip()) and columns.isdigit():
        return int(columns)
    if not stream.isatty():
        return None
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except OSError:
        return 80


def print_table(table: TextTable, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(table.render(terminal_width(stream), colour_on(stream)) + "\n")
