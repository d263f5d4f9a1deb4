"""Where a payload is stored (sans-IO), shared by both backends.

Three nullable columns, exactly one set: `payload_json` when the bytes are UTF-8 JSON and not
truncated (PostgreSQL: JSONB, queryable; it re-serializes, so JSON payloads read back equal as
JSON but not byte for byte), else `payload_text` when they are UTF-8 without NUL, else
`payload_bytes` (BYTEA/BLOB). JSON with a `\\u0000` escape goes to text: JSONB refuses it.
"""

from __future__ import annotations

import orjson

PayloadColumns = tuple[str | None, str | None, bytes | None]  # (json, text, bytes)


def to_columns(payload: bytes, truncated: bool) -> PayloadColumns:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None, None, payload
    if "\x00" in text:
        return None, None, payload
    if not truncated and b"\\u0000" not in payload:
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError:
            pass
        else:
            return text, None, None
    return None, text, None


def from_columns(json: str | None, text: str | None, blob: bytes | None) -> bytes:
    if json is not None:
        return json.encode("utf-8")
    if text is not None:
        return text.encode("utf-8")
    return bytes(blob or b"")
