"""Which column a payload goes to, and that it comes back as the same bytes."""

from __future__ import annotations

import pytest

from km.server.stores.payload import from_columns, to_columns


@pytest.mark.parametrize(
    ("payload", "truncated", "column"),
    [
        (b'{"jsonrpc":"2.0","id":1}', False, 0),
        (b"[1, 2, 3]", False, 0),
        (b'{"jsonrpc":"2.0","id":1', True, 1),  # truncated: kept as text
        (b'{"jsonrpc":"2.0","id":1}', True, 1),  # truncated even if it parses
        (b"not json", False, 1),
        (b"", False, 1),
        (b'{"a":"\\u0000"}', False, 1),  # JSONB refuses \u0000
        (b"a\x00b", False, 2),  # text cannot hold NUL
        (b"\xff\xfe", False, 2),  # not UTF-8
        ("caf\u00e9".encode(), False, 1),
    ],
)
def test_column_choice_and_round_trip(payload: bytes, truncated: bool, column: int) -> None:
    columns = to_columns(payload, truncated)
    assert [i for i, c in enumerate(columns) if c is not None] == [column]
    assert from_columns(*columns) == payload
