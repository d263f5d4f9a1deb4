"""The JSONL export format (sans-IO): one JSON object a line, lossless.

```
{"type":"km-export","format":1,"km_version":"...","filter":null}     header, first line
{"type":"session", <every sessions column>}
{"type":"event", <every events column but seq>, "payload":<the payload itself>}
{"type":"event", ..., "payload_b64":"..."}                           payload not JSON
{"type":"finding", <every findings column>}
{"type":"end","sessions":S,"events":E,"findings":F}                  last line
```

A payload that is JSON (and holds no line break) is written as itself, byte for byte, as the
record's last key, so it reads as JSON and `decode_line` gives back the exact bytes (the key is
found at its first unescaped occurrence: every field before it is a JSON string or number km
wrote, whose quotes are escaped). Any other payload (truncated, not UTF-8, not JSON) goes as
base64. Columns are written generically, so columns a later km adds travel too. The `end`
record, with its counts, is what tells a complete file from a truncated one.
"""

from __future__ import annotations

import base64
import binascii
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

FORMAT = 1
HEADER = "km-export"
SESSION = "session"
EVENT = "event"
FINDING = "finding"
END = "end"
RECORD_TYPES = (SESSION, EVENT, FINDING)
_PAYLOAD_KEY = b',"payload":'
_LOCAL_COLUMNS = frozenset({"seq"})  # the spool's own row numbers: never exported

# What every record of a type must carry: name -> allowed types (None allowed only if listed).
_INT = (int,)
_STR = (str,)
_OPT_INT = (int, type(None))
_OPT_STR = (str, type(None))
REQUIRED: dict[str, dict[str, tuple[type, ...]]] = {
    EVENT: {
        "id": _STR, "session_id": _STR, "server": _STR, "direction": _STR, "ts_ns": _INT,
        "mono_ns": _INT, "kind": _STR, "size": _INT,
    },
    SESSION: {"session_id": _STR, "server": _STR, "command": _STR, "started_ns": _INT},
    FINDING: {
        "id": _STR, "session_id": _STR, "server": _STR, "rule": _STR, "severity": _STR,
        "kind": _STR, "message": _STR, "ts_ns": _INT,
    },
}  # fmt: skip
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "method": _OPT_STR, "rpc_id": _OPT_STR, "link_id": _OPT_STR, "latency_us": _OPT_INT,
    "truncated": _INT, "tool": _OPT_STR, "status": _OPT_STR, "tokens": _OPT_INT,
    "risk": _OPT_INT, "state": _INT, "attempts": _INT,
}  # fmt: skip


class JsonlError(ValueError):
    """A line that is not a record of this format; `line` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(slots=True)
class Record:
    """One decoded line: its type and fields (an event's `payload` as the exact bytes)."""

    type: str
    fields: dict[str, Any]


# -- writing -------------------------------------------------------------------------------------


def header(km_version: str, filter_text: str | None) -> bytes:
    doc = {"type": HEADER, "format": FORMAT, "km_version": km_version, "filter": filter_text}
    return orjson.dumps(doc) + b"\n"


def end(sessions: int, events: int, findings: int) -> bytes:
    doc = {"type": END, "sessions": sessions, "events": events, "findings": findings}
    return orjson.dumps(doc) + b"\n"


def encode_row(kind: str, names: Sequence[str], row: Sequence[Any]) -> bytes:
    """One line for a spool row (`names` its column names). BLOB columns other than an event's
    payload go as `<name>_b64`. `RowEncoder` does the same faster for many rows."""
    return RowEncoder(kind, names)(row)


class RowEncoder:
    """`encode_row` for rows of one query: the column plan is worked out once."""

    __slots__ = ("_getter", "_keys", "_kind", "_payload")

    def __init__(self, kind: str, names: Sequence[str]) -> None:
        kept = [
            i
            for i, n in enumerate(names)
            if n not in _LOCAL_COLUMNS and not (kind == EVENT and n == "payload")
        ]
        self._kind = kind
        self._keys = ("type", *(names[i] for i in kept))
        self._payload = names.index("payload") if kind == EVENT and "payload" in names else -1
        self._getter = operator.itemgetter(*kept) if len(kept) > 1 else _one(kept)

    def __call__(self, row: Sequence[Any]) -> bytes:
        values = self._getter(row)
        if bytes in map(type, values):
            values = tuple(_blob(v) for v in values)
            keys = tuple(
                k + "_b64" if type(v) is _B64 else k
                for k, v in zip(self._keys[1:], values, strict=True)
            )
            doc = dict(zip(("type", *keys), (self._kind, *values), strict=True))
        else:
            doc = dict(zip(self._keys, (self._kind, *values), strict=True))
        if self._payload < 0:
            return orjson.dumps(doc) + b"\n"
        payload: bytes = row[self._payload]
        if _embeddable(payload):
            return orjson.dumps(doc)[:-1] + _PAYLOAD_KEY + payload + b"}\n"
        doc["payload_b64"] = base64.b64encode(payload).decode("ascii")
        encoded: bytes = orjson.dumps(doc)
        return encoded + b"\n"


class _B64(str):
    """A BLOB column's value, base64-encoded (its key gets `_b64`)."""


def _blob(value: object) -> object:
    return _B64(base64.b64encode(value).decode("ascii")) if type(value) is bytes else value


def _one(kept: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    if not kept:
        return lambda row: ()
    i = kept[0]
    return lambda row: (row[i],)


def _embeddable(payload: bytes) -> bool:
    if not payload or b"\n" in payload or b"\r" in payload:
        return False
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return True


# -- reading -------------------------------------------------------------------------------------


def decode_line(line: bytes, lineno: int) -> Record | dict[str, Any]:
    """A record, or the header/end document (a dict with "type" km-export or end). Raises
    `JsonlError` naming the line and what is wrong with it."""
    text = line.rstrip(b"\n")
    if text.endswith(b"\r"):
        text = text[:-1]
    if not text.strip():
        raise JsonlError(lineno, "empty line")
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        cut = "" if line.endswith(b"\n") else " (the file ends in the middle of it: truncated?)"
        raise JsonlError(lineno, f"not JSON: {exc}{cut}") from None
    if not isinstance(doc, dict):
        raise JsonlError(lineno, f"expected a JSON object, found {type(doc).__name__}")
    kind = doc.get("type")
    if kind in (HEADER, END):
        _check_meta(doc, lineno)
        return doc
    if kind not in RECORD_TYPES:
        expected = ", ".join(RECORD_TYPES)
        raise JsonlError(lineno, f"unknown record type {kind!r} (expected {expected})")
    del doc["type"]
    _check_fields(kind, doc, lineno)
    if kind == EVENT:
        doc["payload"] = _payload(text, doc, lineno)
    for name in [k for k in doc if k.endswith("_b64")]:
        doc[name[:-4]] = _b64(doc.pop(name), name, lineno)
    return Record(kind, doc)


def _check_meta(doc: Mapping[str, Any], lineno: int) -> None:
    if doc["type"] == HEADER:
        if doc.get("format") != FORMAT:
            raise JsonlError(lineno, f"export format {doc.get('format')!r}; this km reads {FORMAT}")
        return
    for name in ("sessions", "events", "findings"):
        if not isinstance(doc.get(name), int):
            raise JsonlError(lineno, f"end record without a count of {name}")


def _check_fields(kind: str, doc: Mapping[str, Any], lineno: int) -> None:
    for name, types in REQUIRED[kind].items():
        value = doc.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            found = type(value).__name__
            what = "missing" if name not in doc else f"{found}, not {types[0].__name__}"
            raise JsonlError(lineno, f"{kind} field {name!r}: {what}")
    for name, value in doc.items():
        allowed = _OPTIONAL.get(name)
        if allowed is not None and (not isinstance(value, allowed) or isinstance(value, bool)):
            raise JsonlError(lineno, f"{kind} field {name!r}: {type(value).__name__} not allowed")
        if isinstance(value, (dict, list)) and not (kind == EVENT and name == "payload"):
            raise JsonlError(lineno, f"{kind} field {name!r}: a {type(value).__name__}")


def _payload(text: bytes, doc: dict[str, Any], lineno: int) -> bytes:
    if "payload_b64" in doc:
        if "payload" in doc:
            raise JsonlError(lineno, "event has both payload and payload_b64")
        return _b64(doc.pop("payload_b64"), "payload_b64", lineno)
    if "payload" not in doc:
        raise JsonlError(lineno, "event field 'payload' (or 'payload_b64'): missing")
    value = doc["payload"]
    start = text.find(_PAYLOAD_KEY)
    if start >= 0 and text.endswith(b"}"):
        raw = text[start + len(_PAYLOAD_KEY) : -1]
        try:
            if orjson.loads(raw) == value:
                return raw  # the bytes as captured
        except orjson.JSONDecodeError:
            pass
    return orjson.dumps(value)  # edited by hand (keys moved): the same JSON, written by orjson


def _b64(value: object, name: str, lineno: int) -> bytes:
    if not isinstance(value, str):
        raise JsonlError(lineno, f"field {name!r}: base64 text expected")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise JsonlError(lineno, f"field {name!r}: not valid base64") from None
