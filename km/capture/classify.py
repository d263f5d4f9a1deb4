"""What a frame is, in JSON-RPC terms: the kind, method, id and correlation hints.

`classify` runs for every captured frame, so its common path is one `orjson.loads` and a few
dict look-ups. A frame that is not JSON-RPC (a banner, a number, invalid UTF-8) is INVALID, never
an exception. Rules, for one object:

    "method" and "id"   -> REQUEST       ("id": null counts as present)
    "method", no "id"   -> NOTIFICATION
    "error" and "id"    -> ERROR         (checked before "result"; "id": null is still an error)
    "result" and "id"   -> RESPONSE
    anything else       -> INVALID       (a "method" that is not a string too)

A JSON array is a BATCH whose `elements` are classified one by one (an element that is not an
object is INVALID); an empty array is INVALID. Ids and tokens are kept as JSON text
(`orjson.dumps` of the parsed value), so `1` and `"1"` stay distinct and an `"id": null` is
`"null"` (no id at all is None).

A truncated frame is read with `scan_envelope` from its head and tail. That recovers the method
and id, but not what is nested inside `params`: a truncated request has no `progress_token`, a
truncated batch has no `elements`, and a truncated request whose id sits in neither end is taken
for a notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from km.capture.envelope import scan_envelope
from km.events import BATCH, ERROR, INVALID, NOTIFICATION, REQUEST, RESPONSE

PROGRESS = "notifications/progress"
CANCELLED = "notifications/cancelled"

_loads = orjson.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1.5 us more, per message
class Envelope:
    """The classification of one frame (or of one element of a batch).

    `progress_token` is set on a request carrying `params._meta.progressToken` and on a
    `notifications/progress` (its `params.progressToken`); `cancel_request_id` on a
    `notifications/cancelled` (its `params.requestId`). Both are JSON text, like `rpc_id`.
    Treated as immutable (`_INVALID` is shared), though not frozen.
    """

    kind: str
    method: str | None = None
    rpc_id: str | None = None
    progress_token: str | None = None
    cancel_request_id: str | None = None
    elements: tuple[Envelope, ...] = ()


_INVALID = Envelope(INVALID)
_TRUNCATED_BATCH = Envelope(BATCH)
# A plain notification's envelope is its method alone: made once per method (a session has a
# handful), shared like `_INVALID`. Bounded: past this many methods, made every time.
_NOTIFICATIONS: dict[str, Envelope] = {}
_NOTIFICATIONS_MAX = 1024


def classify(data: bytes, size: int, truncated: bool, tail: bytes) -> Envelope:
    """Classify a frame: `data` is the whole line, or its head when `truncated`.

    `size` (the full length) is accepted for the callers' convenience and for future rules; the
    classification does not depend on it.
    """
    if truncated:
        return _classify_scanned(data, tail)
    try:
        obj = _loads(data)
    except _JSONDecodeError:
        return _INVALID
    if type(obj) is dict:
        return _classify_object(obj)
    if type(obj) is list and obj:
        return Envelope(
            BATCH,
            elements=tuple(
                _classify_object(item) if type(item) is dict else _INVALID for item in obj
            ),
        )
    return _INVALID


def _json_text(value: Any) -> str:
    if type(value) is int:
        return str(value)  # the same text orjson writes, without the bytes round trip
    return _dumps(value).decode()


def _classify_object(obj: dict[str, Any]) -> Envelope:
    method = obj.get("method")
    if method is not None:
        if type(method) is not str:
            return _INVALID
        params = obj.get("params")
        if "id" in obj:
            token = None
            if type(params) is dict:
                meta = params.get("_meta")
                if type(meta) is dict and "progressToken" in meta:
                    token = _json_text(meta["progressToken"])
            return Envelope(REQUEST, method, _json_text(obj["id"]), token)
        if type(params) is dict:
            if method == PROGRESS and "progressToken" in params:
                return Envelope(NOTIFICATION, method, None, _json_text(params["progressToken"]))
            if method == CANCELLED and "requestId" in params:
                return Envelope(NOTIFICATION, method, None, None, _json_text(params["requestId"]))
        env = _NOTIFICATIONS.get(method)
        if env is None:
            env = Envelope(NOTIFICATION, method)
            if len(_NOTIFICATIONS) < _NOTIFICATIONS_MAX:
                _NOTIFICATIONS[method] = env
        return env
    if "id" in obj:
        rpc_id = obj["id"]
        if "error" in obj:
            return Envelope(ERROR, None, _json_text(rpc_id))
        if "result" in obj:
            return Envelope(RESPONSE, None, _json_text(rpc_id))
    return _INVALID


def _classify_scanned(head: bytes, tail: bytes) -> Envelope:
    scan = scan_envelope(head, tail)
    if scan.batch:
        return _TRUNCATED_BATCH
    fields = scan.fields
    has_id = "id" in fields
    rpc_id = _json_text(fields["id"]) if has_id else None
    method = fields.get("method")
    if scan.has("method"):
        if type(method) is not str:
            return _INVALID  # not a string, or cut off by the end of the head
        return Envelope(REQUEST if has_id else NOTIFICATION, method, rpc_id)
    if has_id:
        if scan.has("error"):
            return Envelope(ERROR, None, rpc_id)
        if scan.has("result"):
            return Envelope(RESPONSE, None, rpc_id)
    return _INVALID
