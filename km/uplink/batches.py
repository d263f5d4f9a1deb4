"""Spool rows to request bodies (sans-IO), as docs/api.md describes them.

- `encode_event(row)` is one event's JSON: the payload as a string when its bytes are UTF-8
  (`payload_encoding: "utf8"`), else base64.
- `plan_batches(rows, max_events, max_bytes)` cuts rows, in order, into batches bounded by
  count and by the size of the body before gzip. One event larger than `max_bytes` travels
  alone (the server says whether it fits its own limit).
- `Batch.split()` halves a batch the server refused as a whole, to isolate the bad event(s).
- `gzip_body` compresses a body (fast level: the uplink sends much and the network is local
  or cheap next to the CPU).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

UTF8 = "utf8"
BASE64 = "base64"
BODY_OPEN = b'{"events":['
BODY_CLOSE = b"]}"
ENVELOPE_BYTES = len(BODY_OPEN) + len(BODY_CLOSE)
GZIP_LEVEL = 1  # ~5x smaller for JSON-RPC traffic at a fraction of level 6's CPU time
GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer, not a raw zlib stream


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~3 us a row, 500 rows a claim
class SpoolRow:
    """One event claimed from the spool, with its session's host and km version. Treat as
    read-only."""

    seq: int
    id: str
    session_id: str
    server: str
    direction: str
    ts_ns: int
    kind: str
    method: str | None
    rpc_id: str | None
    size: int
    payload: bytes
    truncated: bool = False
    link_id: str | None = None
    latency_us: int | None = None
    host: str | None = None
    km_version: str | None = None
    attempts: int = 0
    tool: str | None = None
    status: str | None = None
    tokens: int | None = None
    risk: int | None = None


def payload_field(payload: bytes) -> tuple[str, str]:
    """(payload, payload_encoding): the text itself when the bytes are UTF-8, else base64."""
    try:
        return payload.decode("utf-8"), UTF8
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), BASE64


def event_dict(row: SpoolRow) -> dict[str, object]:
    payload, encoding = payload_field(row.payload)
    return {
        "id": row.id,
        "session_id": row.session_id,
        "server": row.server,
        "direction": row.direction,
        "ts_ns": row.ts_ns,
        "kind": row.kind,
        "method": row.method,
        "rpc_id": row.rpc_id,
        "size": row.size,
        "payload": payload,
        "payload_encoding": encoding,
        "truncated": row.truncated,
        "link_id": row.link_id,
        "latency_us": row.latency_us,
        "host": row.host,
        "km_version": row.km_version,
        "tool": row.tool,
        "status": row.status,
        "tokens": row.tokens,
        "risk": row.risk,
    }


def encode_event(row: SpoolRow) -> bytes:
    # orjson hands back its working buffer (~4 KB however short the JSON), and a claim holds
    # 500 encoded events, two claims at a time: ~8 MB for ~400 KB of JSON in the delivering
    # capture process. An exact-size copy lets that buffer go at once (and is faster: the
    # freed buffer is reused by the next event instead of fresh pages each time).
    return bytes(memoryview(orjson.dumps(event_dict(row))))


def body_of(encoded: Sequence[bytes]) -> bytes:
    """`{"events":[...]}` around already-encoded events."""
    return BODY_OPEN + b",".join(encoded) + BODY_CLOSE


def body_size(encoded: Sequence[bytes]) -> int:
    return ENVELOPE_BYTES + sum(len(e) for e in encoded) + max(0, len(encoded) - 1)


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows and their encoded events, in spool order; `body` is the request body (not gzipped)."""

    rows: tuple[SpoolRow, ...]
    encoded: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.rows or len(self.rows) != len(self.encoded):
            raise ValueError("a batch needs at least one row, each with its encoded event")

    @property
    def body(self) -> bytes:
        return body_of(self.encoded)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def split(self) -> tuple[Batch, Batch]:
        """The first and second halves (the first gets the smaller half when odd)."""
        if len(self.rows) < 2:
            raise ValueError("a batch of one event cannot be split")
        half = len(self.rows) // 2
        return (
            Batch(self.rows[:half], self.encoded[:half]),
            Batch(self.rows[half:], self.encoded[half:]),
        )


def plan_batches(rows: Sequence[SpoolRow], max_events: int, max_bytes: int) -> list[Batch]:
    """Cut `rows` (in order) into batches of at most `max_events` events and at most
    `max_bytes` of body before compression; an event bigger than that alone goes alone."""
    if max_events < 1 or max_bytes < 1:
        raise ValueError(f"need max_events >= 1 and max_bytes >= 1, got {max_events}, {max_bytes}")
    batches: list[Batch] = []
    cur_rows: list[SpoolRow] = []
    cur_enc: list[bytes] = []
    size = ENVELOPE_BYTES
    for row in rows:
        encoded = encode_event(row)
        extra = len(encoded) + (1 if cur_enc else 0)  # the comma
        if cur_rows and (len(cur_rows) >= max_events or size + extra > max_bytes):
            batches.append(Batch(tuple(cur_rows), tuple(cur_enc)))
            cur_rows, cur_enc, size = [], [], ENVELOPE_BYTES
            extra = len(encoded)
        cur_rows.append(row)
        cur_enc.append(encoded)
        size += extra
    if cur_rows:
        batches.append(Batch(tuple(cur_rows), tuple(cur_enc)))
    return batches


def claim_count(sizes: Sequence[int], max_events: int, max_bytes: int) -> int:
    """How many leading rows, of estimated encoded `sizes`, make one batch: at least one."""
    total = ENVELOPE_BYTES
    for n, size in enumerate(sizes[:max_events]):
        total += size + (1 if n else 0)
        if n and total > max_bytes:
            return n
    return min(len(sizes), max_events)


def estimate_encoded(payload_len: int) -> int:
    """A row's likely encoded size from its payload length: JSON text grows when its quotes
    are escaped inside a string (and base64 grows by a third); the rest is ~300 bytes."""
    return payload_len + payload_len // 3 + 320


def gzip_body(body: bytes, level: int = GZIP_LEVEL) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
    return compressor.compress(body) + compressor.flush()
