"""Small, pure formatting for the views: times, durations, sizes, names cut in the middle, and
column widths fitted to a terminal. Every captured string shown goes through `km.terminal.safe`
(control characters made visible) before it reaches these."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

ELLIPSIS = "…"


_last_second: list[object] = [None, ""]  # (second, its `15:04:05`): lines come in bursts


def clock(ts_ns: int) -> str:
    """`15:04:05.123` in local time."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    if _last_second[0] != seconds:
        _last_second[:] = [seconds, time.strftime("%H:%M:%S", time.localtime(seconds))]
    return f"{_last_second[1]}.{rest // 1_000_000:03d}"


def stamp(ts_ns: int, *, seconds: bool = True) -> str:
    """`2026-12-06 15:04:05` (local time), or `2026-12-06 15:04` without seconds."""
    return time.strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(ts_ns / 1e9)
    )


def iso(ts_ns: int) -> str:
    """`2026-12-06T15:04:05.123456Z` (UTC), for JSON."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


def latency(us: int | None) -> str:
    """`850us`, `12.3ms`, `1.24s`, `2m03s`; `-` for none."""
    if us is None:
        return "-"
    if us < 1000:
        return f"{us}us"
    if us < 100_000:
        return f"{us / 1000:.1f}ms"
    if us < 1_000_000:
        return f"{us // 1000}ms"
    if us < 60_000_000:
        return f"{us / 1e6:.2f}s"
    return duration(us * 1000)


def duration(ns: int | None) -> str:
    """`45s`, `12m03s`, `1h02m`, `3d04h`; `-` for none."""
    if ns is None or ns < 0:
        return "-"
    s = ns // 1_000_000_000
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def size(n: int | None) -> str:
    """`512B`, `1.2k`, `34k`, `3.4M`; `-` for none."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n}B"
    for unit, scale in (("k", 1024), ("M", 1024**2), ("G", 1024**3)):
        value = n / scale
        if value < 1024 or unit == "G":
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    raise AssertionError("unreachable")


def count(n: int | None) -> str:
    """`340`, `1.2k`, `45k`, `1.3M`; `-` for none."""
    if n is None:
        return "-"
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k" if n < 10_000 else f"{n // 1000}k"
    return f"{n / 1e6:.1f}M"


def middle(text: str, width: int) -> str:
    """`text` cut to `width` characters by replacing its middle with an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    keep = width - 1
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]


@dataclass(frozen=True, slots=True)
class Column:
    """A column: `name` (header), the width it wants, the least it may shrink to (0: it may
    be hidden instead), whether it is right-aligned, and whether it gives up width first
    (before any column is hidden or any other is cut)."""

    name: str
    want: int
    least: int
    right: bool = False
    first: bool = False
    keep_start: bool = False  # cut at the end (an id whose prefix is what counts)


def fit(columns: Sequence[Column], total: int | None, gap: int = 1) -> list[int]:
    """Widths for `columns` within `total` characters (None: as wide as they want).

    In this order, until they fit: `first` columns shrink to their least; columns whose least
    is 0 are hidden, the last first (and `first` columns get back what that frees); the widest
    remaining columns shrink, one character at a time, never below their least."""
    widths = [max(c.want, len(c.name) if c.least else 0) for c in columns]
    if total is None:
        return widths

    def used() -> int:
        shown = [w for w in widths if w > 0]
        return sum(shown) + gap * max(0, len(shown) - 1)

    for i, c in enumerate(columns):
        if c.first and used() > total:
            widths[i] = max(c.least, widths[i] - (used() - total))
    for i in reversed(range(len(columns))):
        if columns[i].least == 0 and used() > total:
            widths[i] = 0
    for i, c in enumerate(columns):  # room left once columns are hidden goes back to them
        if c.first and used() < total:
            widths[i] = min(c.want, widths[i] + total - used())
    while used() > total:
        flexible = [i for i, c in enumerate(columns) if widths[i] > max(c.least, 1)]
        if not flexible:
            break
        widest = max(flexible, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def cell(text: str, width: int, right: bool = False, keep_start: bool = False) -> str:
    if len(text) == width:
        return text
    cut = text[:width] if keep_start else middle(text, width)
    return cut.rjust(width) if right else cut.ljust(width)
