"""Tables that stay readable in a narrow terminal (80 columns): never a header cut to ``conf…``.

:func:`fit` prints a table as built when it fits the console; else compact (no vertical rules, one space
between columns; only columns built with ``no_wrap=False`` wrap); else one block per row, each value
under its full header name.
"""

from __future__ import annotations

import copy

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

_UNLIMITED = 100_000


def _natural(console: Console, renderable: object, wrap: bool) -> int:
    """Width of one cell: on one line, or (``wrap``) its longest word."""
    measured = Measurement.get(console, console.options.update_width(_UNLIMITED), renderable)  # type: ignore[arg-type]
    return measured.minimum if wrap else measured.maximum


def _frame(table: Table) -> int:
    """Columns' padding, rules and edges: what the table adds to its cells' widths."""
    probe = Table(box=table.box, padding=table.padding, pad_edge=table.pad_edge, show_edge=table.show_edge,
                  collapse_padding=table.collapse_padding)
    for _ in table.columns:
        probe.add_column("x", no_wrap=True)
    probe.add_row(*("x" for _ in table.columns))
    return _natural(Console(width=_UNLIMITED), probe, wrap=False) - len(table.columns)


def _widths(console: Console, table: Table) -> list[tuple[int, int]]:
    """(narrowest, natural) width of each column's content: natural = every cell on one line; narrowest =
    the same for ``no_wrap`` columns, the longest word for the others."""
    out = []
    for column in table.columns:
        cells = (column.header, *column.cells)
        natural = max(_natural(console, cell, wrap=False) for cell in cells)
        narrowest = natural if column.no_wrap else max(_natural(console, cell, wrap=True) for cell in cells)
        out.append((narrowest, natural))
    return out


def needed_width(console: Console, table: Table, wrapped: bool = False) -> int:
    """Columns needed to show ``table`` with no cell cut: every cell on one line, or (``wrapped``) with the
    columns built with ``no_wrap=False`` wrapped at spaces."""
    return sum(low if wrapped else high for low, high in _widths(console, table)) + _frame(table)


def compact(table: Table, console: Console | None = None) -> Table:
    """``table`` without vertical rules or outer padding, columns one space apart; with ``console``, the
    wrappable columns (widest first) narrowed so that it fits ``console.width`` if it can."""
    small = copy.copy(table)
    small.box = box.SIMPLE_HEAD
    small.show_edge = False
    small.pad_edge = False
    small.padding = (0, 1, 0, 0)
    if console is None:
        return small
    widths = _widths(console, small)
    current = [high for _, high in widths]
    excess = sum(current) + _frame(small) - console.width
    while excess > 0:
        room = [(current[i] - low, i) for i, (low, _) in enumerate(widths) if current[i] > low]
        if not room:
            break
        _, i = max(room)
        current[i] -= 1
        excess -= 1
    small.columns = [copy.copy(c) for c in table.columns]
    for column, width in zip(small.columns, current):
        column.width = width
    return small


def vertical(table: Table) -> RenderableType:
    """One block per row: the first column's value, then ``header: value`` for the others."""
    headers = [Text(str(c.header).replace("\n", " ")) if not isinstance(c.header, Text) else c.header
               for c in table.columns]
    rows = list(zip(*(list(c.cells) for c in table.columns)))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    for i, row in enumerate(rows):
        if i:
            grid.add_row("", "")
        grid.add_row(headers[0], row[0])
        for header, value in zip(headers[1:], row[1:]):
            grid.add_row(Text("  ") + header, value)
    parts: list[RenderableType] = []
    if table.title:
        parts.append(Text(str(table.title), style="italic") if not isinstance(table.title, Text) else table.title)
    parts.append(grid)
    if table.caption:
        parts.append(Text(str(table.caption), style="dim") if not isinstance(table.caption, Text) else table.caption)
    return Group(*parts)


def fit(table: Table, console: Console) -> RenderableType:
    """``table`` as built if no cell has to be cut or wrapped at ``console.width``; else :func:`compact` if
    it fits when only its wrappable columns wrap; else :func:`vertical`."""
    if needed_width(console, table) <= console.width:
        return table
    if needed_width(console, compact(table), wrapped=True) <= console.width:
        return compact(table, console)
    return vertical(table)
