"""Opaque pagination cursors (sans-IO): a position in a keyset order, base64url-encoded.

A cursor carries a kind tag, so a sessions cursor passed to the events listing is rejected
rather than misread. Decoding anything this module did not produce raises `BadCursor`.
"""

from __future__ import annotations

import base64
import binascii

from km.server.errors import BadCursor

_SEP = "\x1f"


def encode(kind: str, ts_ns: int, key: str) -> str:
    raw = f"{kind}{_SEP}{ts_ns:d}{_SEP}{key}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(kind: str, cursor: str) -> tuple[int, str]:
    """The (ts_ns, key) position after which the next page starts."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
        tag, ts_text, key = raw.split(_SEP)
        ts_ns = int(ts_text)
    except (ValueError, UnicodeError, binascii.Error):
        raise BadCursor(cursor) from None
    # A key with NUL cannot have been issued (stored text never holds one) and PostgreSQL
    # would refuse to compare with it: a forged cursor is the client's error, never a 500.
    if tag != kind or not key or "\x00" in key or not -(2**63) <= ts_ns < 2**63:
        raise BadCursor(cursor)
    return ts_ns, key
