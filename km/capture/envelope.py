"""Reading a JSON-RPC envelope from the two ends of a frame too large to keep whole.

A frame over the payload cap is stored as its first `cap` bytes (the head) and its last
`TAIL_BYTES` (the tail). The envelope fields usually sit at one end or the other:

    Python SDK:      {"jsonrpc":"2.0","id":5,"result":{...huge...}}
    TypeScript SDK:  {"result":{...huge...},"jsonrpc":"2.0","id":5}
    requests:        {"method":"tools/call","params":{...},"jsonrpc":"2.0","id":1}

`scan_envelope` reads the head's top-level members forwards while their values are scalars,
stopping at the first value that is nested (or cut off by the end of the head) and recording its
key, and reads the tail's trailing top-level scalar members backwards. It never parses the middle
and never raises: what it cannot be sure of, it leaves out.

A trailing member is only trusted at top level: the tail must end with exactly one `}` after the
last scalar (`...{"id":3}}` ends two levels deep and yields nothing), every string is delimited
by counting backslashes (a run of them reaching the start of the tail makes the parity unknown,
so the scan stops), and each key must be preceded, inside the tail, by `,` or `{`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import orjson

Scalar: TypeAlias = str | int | float | bool | None

_QUOTE = 0x22
_BACKSLASH = 0x5C
_COLON = 0x3A
_COMMA = 0x2C
_LBRACE = 0x7B
_RBRACE = 0x7D
_LBRACKET = 0x5B
_WS = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_NUM_CHARS = frozenset(b"0123456789+-.eE")
_LITERALS = (b"true", b"false", b"null")

_CUT = -1  # a token runs into the end of the buffer: it may be longer than what we see
_BAD = -2  # not a scalar token


@dataclass(frozen=True, slots=True)
class EnvelopeScan:
    """What the two ends of an oversized frame say about its top-level members.

    `fields` maps keys to scalar values found at either end (a trailing member wins over a
    leading one, as the last duplicate key wins in a full parse). `open_key` is the key of the
    first leading member whose value the head does not hold in full: a nested object or array
    (`"result"`, `"params"`, `"error"`), or a scalar cut off by the end of the head. `batch` is
    set when the frame is a JSON array; nothing else is read then.
    """

    fields: dict[str, Scalar]
    open_key: str | None = None
    batch: bool = False

    def has(self, key: str) -> bool:
        """Whether the frame has a top-level member `key`, as far as its two ends show."""
        return key in self.fields or self.open_key == key


def scan_envelope(head: bytes, tail: bytes) -> EnvelopeScan:
    """Recover the top-level scalar members of a JSON object from its first and last bytes."""
    i = _skip_ws(head, 0)
    if i < len(head) and head[i] == _LBRACKET:
        return EnvelopeScan({}, None, True)
    fields, open_key = _scan_head(head, i)
    trailing = _scan_tail(tail)
    if trailing:
        fields.update(trailing)
    return EnvelopeScan(fields, open_key, False)


def _skip_ws(buf: bytes, i: int) -> int:
    n = len(buf)
    while i < n and buf[i] in _WS:
        i += 1
    return i


def _skip_ws_back(buf: bytes, i: int) -> int:
    while i >= 0 and buf[i] in _WS:
        i -= 1
    return i


def _loads_scalar(token: bytes) -> tuple[bool, Scalar]:
    try:
        value = orjson.loads(token)
    except orjson.JSONDecodeError:
        return False, None
    if isinstance(value, str | int | float | bool) or value is None:
        return True, value
    return False, None


def _string_end(buf: bytes, i: int) -> int:
    """Index of the quote closing the string opened at `i`, or `_CUT`."""
    j = i + 1
    while True:
        q = buf.find(b'"', j)
        if q < 0:
            return _CUT
        k = q - 1
        while k > i and buf[k] == _BACKSLASH:
            k -= 1
        if (q - 1 - k) % 2 == 0:  # an even run of backslashes: the quote is not escaped
            return q
        j = q + 1


def _string_start_back(buf: bytes, q: int) -> int:
    """Index of the quote opening the string closed at `q`, or -1 when the tail cannot say."""
    j = q
    while True:
        p = buf.rfind(b'"', 0, j)
        if p < 0:
            return -1
        k = p - 1
        while k >= 0 and buf[k] == _BACKSLASH:
            k -= 1
        if k < 0:
            return -1  # the backslashes (or the quote) reach the start: parity unknown
        if (p - 1 - k) % 2 == 0:
            return p
        j = p


def _scalar_end(buf: bytes, i: int) -> int:
    """End (exclusive) of the scalar token starting at `i`, or `_CUT` / `_BAD`."""
    c = buf[i]
    if c == _QUOTE:
        q = _string_end(buf, i)
        return q + 1 if q >= 0 else _CUT
    n = len(buf)
    if c == 0x2D or c in _DIGITS:
        j = i + 1
        while j < n and buf[j] in _NUM_CHARS:
            j += 1
        return j if j < n else _CUT
    for literal in _LITERALS:
        if buf.startswith(literal, i):
            return i + len(literal)
        if n - i < len(literal) and literal.startswith(buf[i:]):
            return _CUT
    return _BAD


def _scan_head(head: bytes, i: int) -> tuple[dict[str, Scalar], str | None]:
    fields: dict[str, Scalar] = {}
    n = len(head)
    if i >= n or head[i] != _LBRACE:
        return fields, None
    i += 1
    while True:
        i = _skip_ws(head, i)
        if i >= n or head[i] != _QUOTE:
            return fields, None
        end = _string_end(head, i)
        if end < 0:
            return fields, None
        ok, key = _loads_scalar(head[i : end + 1])
        if not ok or not isinstance(key, str):
            return fields, None
        i = _skip_ws(head, end + 1)
        if i >= n or head[i] != _COLON:
            return fields, None
        i = _skip_ws(head, i + 1)
        if i >= n:
            return fields, key
        c = head[i]
        if c in (_LBRACE, _LBRACKET):
            return fields, key
        stop = _scalar_end(head, i)
        if stop == _CUT:
            return fields, key
        if stop == _BAD:
            return fields, None
        ok, value = _loads_scalar(head[i:stop])
        if not ok:
            return fields, None
        fields[key] = value
        i = _skip_ws(head, stop)
        if i >= n or head[i] != _COMMA:
            return fields, None
        i += 1


def _scalar_start_back(buf: bytes, i: int) -> int:
    """Start of the scalar token ending at `i` (inclusive), or -1."""
    c = buf[i]
    if c == _QUOTE:
        return _string_start_back(buf, i)
    if c in _DIGITS:
        k = i - 1
        while k >= 0 and buf[k] in _NUM_CHARS:
            k -= 1
        return k + 1 if k >= 0 else -1  # a number touching the start may be longer
    for literal in _LITERALS:
        start = i + 1 - len(literal)
        if start >= 0 and buf[start : i + 1] == literal:
            return start
    return -1


def _scan_tail(tail: bytes) -> dict[str, Scalar]:
    found: dict[str, Scalar] = {}
    i = _skip_ws_back(tail, len(tail) - 1)
    if i < 0 or tail[i] != _RBRACE:
        return found
    i = _skip_ws_back(tail, i - 1)
    while i >= 0:
        start = _scalar_start_back(tail, i)  # a `}` or `]` here: the member is nested, stop
        if start < 0:
            break
        ok, value = _loads_scalar(tail[start : i + 1])
        if not ok:
            break
        j = _skip_ws_back(tail, start - 1)
        if j < 0 or tail[j] != _COLON:
            break
        j = _skip_ws_back(tail, j - 1)
        if j < 0 or tail[j] != _QUOTE:
            break
        key_start = _string_start_back(tail, j)
        if key_start < 0:
            break
        ok, key = _loads_scalar(tail[key_start : j + 1])
        if not ok or not isinstance(key, str):
            break
        k = _skip_ws_back(tail, key_start - 1)
        if k < 0 or (tail[k] != _COMMA and tail[k] != _LBRACE):
            break
        found.setdefault(key, value)  # scanning backwards: the first seen is the last member
        if tail[k] == _LBRACE:
            break
        i = _skip_ws_back(tail, k - 1)
    return found
