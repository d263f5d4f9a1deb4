"""Cursors round-trip, are opaque, and anything else is a BadCursor."""

from __future__ import annotations

import pytest

from km.server import cursor
from km.server.errors import BadCursor


def test_round_trip() -> None:
    text = cursor.encode("e", 1_763_780_000_000_000_000, "0190c5a2-7b3e-7c41-9d2e-5f6a7b8c9d0e")
    assert "=" not in text and "/" not in text and "+" not in text
    assert cursor.decode("e", text) == (
        1_763_780_000_000_000_000,
        "0190c5a2-7b3e-7c41-9d2e-5f6a7b8c9d0e",
    )


@pytest.mark.parametrize(
    "text", ["", "x", "!!!!", "aGVsbG8", cursor.encode("s", 1, "k"), cursor.encode("e", 1, "")]
)
def test_foreign_cursors_are_refused(text: str) -> None:
    with pytest.raises(BadCursor):
        cursor.decode("e", text)
