"""Fitting names into terminal columns (sans-IO): whole where there is room, else cut in the
middle with an ellipsis, so both ends stay readable (`mcp-server-everything` in 12 columns is
`mcp-se…ything`, not `mcp-server-…`: the ends are what tells servers apart)."""

from __future__ import annotations

ELLIPSIS = "…"
MIN_NAME_WIDTH = 12  # below this a name is no longer recognisable: let the table wrap instead


def middle_ellipsis(text: str, width: int) -> str:
    """`text` if it fits in `width` characters, else its head and tail around an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    keep = width - 1
    head = (keep + 1) // 2
    tail = keep - head
    return text[:head] + ELLIPSIS + (text[len(text) - tail :] if tail else "")


def name_budget(terminal_width: int, others: int) -> int:
    """The width a name column may take in a table whose other columns need `others`."""
    return max(MIN_NAME_WIDTH, terminal_width - others)


def fit_names(names: list[str], terminal_width: int, others: int) -> tuple[list[str], int]:
    """The names fitted to the column's budget, and the column's width (the longest)."""
    budget = name_budget(terminal_width, others)
    fitted = [middle_ellipsis(name, budget) for name in names]
    return fitted, max((len(name) for name in fitted), default=0)
