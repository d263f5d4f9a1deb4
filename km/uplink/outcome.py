"""What an ingest response means for the events in the batch (sans-IO), per docs/api.md.

`decide(status, headers, body, sent_ids)` returns one of:
- `Delivered`: the server read the batch. Accepted and duplicate ids are sent; rejected ids are
  quarantined with the server's reason; ids it did not mention at all go back to pending.
- `Retry`: try again later (429 with its `Retry-After`, 5xx, other unexpected answers, and,
  through `network_error`, anything that kept a response from arriving).
- `Split`: the server refused the batch as a whole (400/413/422 without per-event details);
  halve it to find the culprit. `QuarantineAll` when the batch is a single event already.
- `Pause`: 401/403, the key is wrong or revoked; keep everything until a new key arrives.

Nothing here discards an event, whatever happened and however long ago.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from km.uplink.backoff import parse_retry_after

DEFAULT_RATE_LIMIT_WAIT_S = 1.0  # a 429 without a readable Retry-After waits this long
MAX_REASON_CHARS = 500  # reasons are stored in the spool and shown by `km status`
SPLIT_STATUSES = frozenset({400, 413, 422})
PAUSE_STATUSES = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class Delivered:
    sent: tuple[str, ...]  # accepted or duplicate: never send again
    rejected: tuple[tuple[str, str], ...]  # (id, reason): quarantine
    unacknowledged: tuple[str, ...]  # not mentioned in the answer: back to pending
    accepted: int = 0
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class Retry:
    reason: str
    retry_after_s: float | None = None  # the server's Retry-After: no request before it
    failure: bool = True  # counts against the circuit breaker (a 429 does not)
    status: int | None = None  # None: no response (connection refused, timeout, ...)


@dataclass(frozen=True, slots=True)
class Split:
    reason: str


@dataclass(frozen=True, slots=True)
class QuarantineAll:
    reason: str


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str
    status: int


Outcome = Delivered | Retry | Split | QuarantineAll | Pause


def decide(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    sent_ids: Sequence[str],
    now_epoch_s: float = 0.0,
) -> Outcome:
    """The meaning of one response to a batch of `sent_ids` (in the order they were sent)."""
    doc = _json(body)
    if 200 <= status < 300:
        delivered = _delivered(doc, sent_ids)
        if delivered is None:
            return Retry(
                f"HTTP {status}: the answer is not the ingest result docs/api.md describes "
                f"({_snippet(body)})",
                status=status,
            )
        return delivered
    error = _error_text(doc, body)
    reason = f"HTTP {status}: {error}" if error else f"HTTP {status}"
    if status in PAUSE_STATUSES:
        return Pause(reason, status)
    retry_after = parse_retry_after(header(headers, "Retry-After"), now_epoch_s)
    if status == 429:
        wait = DEFAULT_RATE_LIMIT_WAIT_S if retry_after is None else retry_after
        return Retry(reason, wait, failure=False, status=status)
    if status in SPLIT_STATUSES:
        per_event = _delivered(doc, sent_ids)
        if per_event is not None and (per_event.rejected or per_event.sent):
            return per_event
        if len(sent_ids) > 1:
            return Split(reason)
        return QuarantineAll(reason)
    if status >= 500:
        return Retry(reason, retry_after, status=status)
    if status == 404:
        reason += " (is the API URL right? `km config show`)"
    return Retry(reason, retry_after, status=status)


def network_error(description: str) -> Retry:
    """No response at all: connection refused or reset, DNS, TLS, timeout."""
    return Retry(_clip(description), None)


def header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def _json(body: bytes) -> object:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _delivered(doc: object, sent_ids: Sequence[str]) -> Delivered | None:
    """The per-event answer, or None when `doc` is not one."""
    if not isinstance(doc, dict):
        return None
    lists = [doc.get(name, []) for name in ("accepted", "duplicates", "rejected")]
    if not any(name in doc for name in ("accepted", "duplicates", "rejected")):
        return None
    if not all(isinstance(item, list) for item in lists):
        return None
    accepted, duplicates, rejected = lists
    exact = {i: i for i in sent_ids}
    folded = {i.lower(): i for i in sent_ids}

    def ours(value: object) -> str | None:
        if not isinstance(value, str):
            return None
        return exact.get(value) or folded.get(value.lower())

    sent: dict[str, None] = {}
    n_accepted = n_duplicates = 0
    for value in accepted:
        if (i := ours(value)) is not None and i not in sent:
            sent[i] = None
            n_accepted += 1
    for value in duplicates:
        if (i := ours(value)) is not None and i not in sent:
            sent[i] = None
            n_duplicates += 1
    refused: dict[str, str] = {}
    for item in rejected:
        if not isinstance(item, dict):
            continue
        i = ours(item.get("id"))
        index = item.get("index")
        if i is None and type(index) is int and 0 <= index < len(sent_ids):
            i = sent_ids[index]
        if i is None or i in sent or i in refused:
            continue
        reason = item.get("reason")
        refused[i] = _clip(reason if isinstance(reason, str) and reason else "rejected")
    missing = tuple(i for i in sent_ids if i not in sent and i not in refused)
    return Delivered(
        sent=tuple(sent),
        rejected=tuple(refused.items()),
        unacknowledged=missing,
        accepted=n_accepted,
        duplicates=n_duplicates,
    )


def _error_text(doc: object, body: bytes) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return _clip(doc["error"])
    return _snippet(body)


def _snippet(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace")
    return _clip(" ".join(text.split()))


def _clip(text: str) -> str:
    clean = "".join(c if c.isprintable() else " " for c in text)
    if len(clean) > MAX_REASON_CHARS:
        return clean[: MAX_REASON_CHARS - 1] + "…"
    return clean
