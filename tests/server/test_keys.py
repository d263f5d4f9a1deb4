"""Key format, hash and display prefix; Bearer header parsing."""

from __future__ import annotations

import hashlib

import pytest

from km.server import keys


def test_generated_keys() -> None:
    key = keys.generate_key()
    assert key.startswith("km_live_") and len(key) == 8 + 32
    assert key != keys.generate_key()
    assert keys.hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert keys.display_prefix(key) == key[:12]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer km_live_abc", "km_live_abc"),
        ("bearer   km_live_abc  ", "km_live_abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_bearer(header: str | None, expected: str | None) -> None:
    assert keys.parse_bearer(header) == expected
