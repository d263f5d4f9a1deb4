"""Formatting helpers and fitting columns to a terminal."""

from __future__ import annotations

from km.views import fmt


def test_middle() -> None:
    assert fmt.middle("short", 10) == "short"
    assert fmt.middle("abcdefghij", 5) == "ab…ij"
    assert fmt.middle("abcdefghij", 6) == "abc…ij"
    assert len(fmt.middle("x" * 100, 17)) == 17
    assert fmt.middle("abc", 1) == "…"


def test_units() -> None:
    assert fmt.latency(850) == "850us"
    assert fmt.latency(12_345) == "12.3ms"
    assert fmt.latency(1_240_000) == "1.24s"
    assert fmt.latency(None) == "-"
    assert fmt.size(512) == "512B"
    assert fmt.size(1300) == "1.3k"
    assert fmt.size(3 * 1024**2) == "3.0M"
    assert fmt.count(1234) == "1.2k"
    assert fmt.duration(125 * 10**9) == "2m05s"
    assert fmt.duration(3 * 86400 * 10**9 + 4 * 3600 * 10**9) == "3d04h"


def test_fit_keeps_everything_when_it_fits() -> None:
    cols = [fmt.Column("a", 10, 3), fmt.Column("b", 20, 5), fmt.Column("c", 4, 0)]
    assert fmt.fit(cols, None) == [10, 20, 4]
    assert fmt.fit(cols, 36) == [10, 20, 4]


def test_fit_order_first_then_hide_then_cut() -> None:
    cols = [
        fmt.Column("a", 10, 3),
        fmt.Column("b", 20, 5),
        fmt.Column("c", 4, 0),
        fmt.Column("id", 12, 4, first=True),
    ]
    assert fmt.fit(cols, 50) == [10, 20, 4, 12]
    assert fmt.fit(cols, 45) == [10, 20, 4, 8]  # the `first` column gives way first
    assert fmt.fit(cols, 40) == [10, 20, 0, 8]  # then hideable columns go
    assert fmt.fit(cols, 30) == [10, 14, 0, 4]  # only then are names cut, widest first
    assert fmt.fit(cols, 10) == [3, 5, 0, 4]  # never below their least
