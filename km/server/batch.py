"""One ingest request, from decoded body to response (sans-IO).

`parse_batch` checks the envelope (`400`/`413`), `plan_batch` validates and redacts each event
and sets aside ids repeated within the batch, and `response_body` answers in the shape of
docs/api.md: ids echoed exactly as the client sent them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import orjson

from km.server.errors import BadRequest, BodyTooLarge
from km.server.stores.base import IngestEvent, IngestResult
from km.server.validate import json_type, validate_event


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int  # position in the batch, for events whose id is missing or unreadable
    id: str | None  # as sent, when it was a string
    reason: str


@dataclass(frozen=True, slots=True)
class BatchPlan:
    events: tuple[IngestEvent, ...]  # valid, redacted, distinct ids, in batch order
    sent_ids: dict[str, str]  # canonical id -> the id as the client wrote it
    repeats: tuple[str, ...]  # ids (as sent) of later copies of an event earlier in the batch
    rejected: tuple[Rejection, ...]


def parse_batch(body: bytes, max_events: int) -> list[object]:
    """The `events` array of a request body; raises `BadRequest` or `BodyTooLarge`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest(f'expected a JSON object {{"events": [...]}}, got {json_type(doc)}')
    events = doc.get("events")
    if not isinstance(events, list):
        raise BadRequest('the body has no "events" array')
    if len(events) > max_events:
        raise BodyTooLarge(f"the batch's {len(events)} events", max_events)
    return events


def plan_batch(
    items: Sequence[object],
    redact: Callable[[bytes], bytes] | None,
    clean: Callable[[Sequence[bytes]], list[bool]] | None = None,
) -> BatchPlan:
    """Validate each item, set repeats aside and redact each event's payload with `redact`.
    `clean`, when given, pre-scans the payloads of the valid events all at once (as
    `km.redact.unchanged_payloads` does): those it answers True for are ones `redact` would
    return unchanged, and are not redacted one by one (a pre-scan per payload cost ~2.7 us
    where the batch's costs ~0.4 us a payload)."""
    checked = [validate_event(item) for item in items]
    unchanged: list[bool] | None = None
    if redact is not None and clean is not None:
        unchanged = clean([e.payload for e in checked if not isinstance(e, str)])
    valid = 0  # index into `unchanged`
    events: list[IngestEvent] = []
    sent_ids: dict[str, str] = {}
    repeats: list[str] = []
    rejected: list[Rejection] = []
    for index, (item, result) in enumerate(zip(items, checked, strict=True)):
        raw_id = item.get("id") if isinstance(item, dict) else None
        sent = raw_id if isinstance(raw_id, str) else None
        if isinstance(result, str):
            rejected.append(Rejection(index, sent, result))
            continue
        valid += 1
        assert sent is not None  # a valid event has a string id
        if result.id in sent_ids:
            repeats.append(sent)
            continue
        if redact is not None and not (unchanged is not None and unchanged[valid - 1]):
            try:
                payload = redact(result.payload)
            except Exception as exc:  # a redactor bug must not take the whole batch down
                rejected.append(Rejection(index, sent, f"payload: redaction failed ({exc!r})"))
                continue
            if payload != result.payload:
                result = replace(result, payload=payload)
        sent_ids[result.id] = sent
        events.append(result)
    return BatchPlan(tuple(events), sent_ids, tuple(repeats), tuple(rejected))


def response_body(plan: BatchPlan, result: IngestResult) -> dict[str, object]:
    accepted = set(result.accepted)
    duplicates = set(result.duplicates)
    return {
        "accepted": [plan.sent_ids[e.id] for e in plan.events if e.id in accepted],
        "duplicates": [plan.sent_ids[e.id] for e in plan.events if e.id in duplicates]
        + list(plan.repeats),
        "rejected": [{"id": r.id, "index": r.index, "reason": r.reason} for r in plan.rejected],
    }
