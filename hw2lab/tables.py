"""Markdown tables, written once (tabulate), for summary.md, the report, README and the search report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tabulate import DataRow, TableFormat, tabulate

# GitHub's pipe table without padding to the widest cell: `| a | b |` over `|---|---|`, so a table's text
# changes only where its cells do.
PIPES = TableFormat(
    lineabove=None,
    linebelowheader=lambda widths, _aligns: "|" + "---|" * len(widths),
    linebetweenrows=None,
    linebelow=None,
    headerrow=DataRow("|", "|", "|"),
    datarow=DataRow("|", "|", "|"),
    padding=1,
    with_header_hide=None,
)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table; a `|` inside a cell is escaped, None is an empty cell, every other value
    is shown as its str (format numbers before)."""
    cells = [["" if cell is None else str(cell).replace("|", "\\|") for cell in row] for row in rows]
    text = tabulate(
        cells,
        headers=[str(name).replace("|", "\\|") for name in header],
        tablefmt=PIPES,
        stralign=None,
        numalign=None,
        disable_numparse=True,
    )
    return text.splitlines()


def format_cell(value: Any, digits: int = 6) -> str:
    """A table cell: empty for None, a float to `digits` significant digits, anything else as its str."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)
