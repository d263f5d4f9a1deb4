"""Result tables: what each workload returns, printed with rich (or plain) and saved as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

Figure = float | int | str | None


@dataclass(slots=True)
class Row:
    """One line of a table: a mode (or a step) and its figures, or the error that stopped it."""

    label: str
    figures: dict[str, Figure] = field(default_factory=dict)
    error: str | None = None


@dataclass(slots=True)
class Table:
    title: str
    columns: list[tuple[str, str]]  # (figure key, header)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, label: str) -> Row:
        for r in self.rows:
            if r.label == label:
                return r
        r = Row(label)
        self.rows.append(r)
        return r


def _cell(value: Figure) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def _cells(table: Table, row: Row) -> list[str]:
    if row.error is not None and not row.figures:
        return [row.label, f"ERROR: {row.error}"] + [""] * (len(table.columns) - 1)
    cells = [row.label] + [_cell(row.figures.get(key)) for key, _ in table.columns]
    if row.error is not None:
        cells[-1] = f"{cells[-1]}  ERROR: {row.error}"
    return cells


def render(tables: list[Table]) -> None:
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table as RichTable
    except ImportError:
        _render_plain(tables)
        return
    width = os.get_terminal_size(1).columns if os.isatty(1) else 160
    console = Console(width=max(120, min(200, width)))
    for table in tables:
        rt = RichTable(title=table.title, title_justify="left")
        rt.add_column("")
        for _, header in table.columns:
            rt.add_column(header, justify="right", overflow="fold")
        for row in table.rows:
            rt.add_row(*map(escape, _cells(table, row)))  # "[stderr: ...]" is not markup
        console.print(rt)
        for note in table.notes:
            console.print(f"  {escape(note)}", style="dim", highlight=False)
        console.print()


def _render_plain(tables: list[Table]) -> None:
    for table in tables:
        grid = [["", *(h for _, h in table.columns)]] + [_cells(table, r) for r in table.rows]
        widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
        print(table.title)
        for line in grid:
            cells = zip(line, widths, strict=True)
            print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(cells)))
        for note in table.notes:
            print(f"  {note}")
        print()


def to_json(tables: list[Table], meta: dict[str, Any], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    doc = {"meta": meta, "tables": [asdict(t) for t in tables]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
