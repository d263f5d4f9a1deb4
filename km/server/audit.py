"""The audit log's vocabulary and the roll-up of refused sign-ins (sans-IO: clock passed in).

Administrative actions are written by the store in the same transaction as the action itself
(`account.created`, `key.created`, `key.revoked`, `retention.changed`), so the log never says
something happened that did not, nor misses something that did. Refused sign-ins (a missing,
unknown or revoked key, or an address throttled for sending them) are many and cheap to send,
so they are counted in memory per (account, address, key prefix, reason) and written as one
row per window: a flood of guesses costs a few rows a minute, not a row per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACCOUNT_CREATED = "account.created"
KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
RETENTION_CHANGED = "retention.changed"
AUTH_REFUSED = "auth.refused"
ACTIONS = (ACCOUNT_CREATED, KEY_CREATED, KEY_REVOKED, RETENTION_CHANGED, AUTH_REFUSED)

OPERATOR = "operator"  # the actor of `km serve ...` commands run on the server machine

# Why a sign-in was refused.
MISSING = "missing"  # no Authorization: Bearer header
UNKNOWN = "unknown"  # a key the server does not know
REVOKED = "revoked"
THROTTLED = "throttled"  # the address sent too many bad keys; not even looked up

WINDOW_NS = 60 * 1_000_000_000  # refused sign-ins are counted per minute
MAX_GROUPS = 1000  # groups per window; past it the rest are counted under one "other" group
AUDIT_RETENTION_DAYS = 400  # audit rows outlive the longest event retention (365 days)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row to write. For a roll-up, `ts_ns` is the window's start and `until_ns` its end."""

    action: str
    actor: str
    ts_ns: int
    account_id: int | None = None
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    count: int = 1
    until_ns: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored row, as read back."""

    id: int
    account_id: int | None
    ts_ns: int
    action: str
    actor: str
    target: str | None
    detail: dict[str, Any]
    count: int
    until_ns: int | None


def entry_json(e: AuditEntry) -> dict[str, object]:
    return {
        "id": e.id,
        "ts_ns": e.ts_ns,
        "action": e.action,
        "actor": e.actor,
        "target": e.target,
        "detail": e.detail,
        "count": e.count,
        "until_ns": e.until_ns,
    }


def shown_prefix(key: str | None, km_prefix: str, length: int) -> str | None:
    """What of a refused key may be stored: its display prefix when it looks like a km key
    (the same 12 characters `km serve keys list` shows), else nothing: a secret of another
    kind pasted by mistake must not land in the log."""
    if key is None or not key.startswith(km_prefix):
        return None
    # What a client sent, shown on terminals later: only the key alphabet, never a control.
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "?" for c in key[:length])


_Group = tuple[int | None, str, str | None, str]  # account, address, prefix, reason


class RefusalRollup:
    """Refused sign-ins counted per window; `due(now)` hands over the windows that ended."""

    def __init__(self, window_ns: int = WINDOW_NS, max_groups: int = MAX_GROUPS) -> None:
        self._window_ns = window_ns
        self._max_groups = max_groups
        self._start: int | None = None
        self._counts: dict[_Group, int] = {}
        self._ready: list[AuditRecord] = []  # ended windows, not handed over yet

    def add(
        self,
        now_ns: int,
        address: str,
        prefix: str | None,
        reason: str,
        account_id: int | None = None,
    ) -> None:
        """Count one refusal (in a new window if the current one has ended)."""
        self._close_if_ended(now_ns)
        if self._start is None:
            self._start = now_ns - now_ns % self._window_ns
        group: _Group = (account_id, address, prefix, reason)
        if group not in self._counts and len(self._counts) >= self._max_groups:
            group = (None, "(other)", None, reason)
        self._counts[group] = self._counts.get(group, 0) + 1

    def due(self, now_ns: int) -> list[AuditRecord]:
        """The records of every window that has ended by `now_ns`."""
        self._close_if_ended(now_ns)
        ready, self._ready = self._ready, []
        return ready

    def flush(self) -> list[AuditRecord]:
        """Everything counted so far (at shutdown: the current window cut short)."""
        self._close()
        return self.due(-(2**63))

    def _close_if_ended(self, now_ns: int) -> None:
        if self._start is not None and now_ns >= self._start + self._window_ns:
            self._close()

    def _close(self) -> None:
        if self._start is None:
            return
        start, until = self._start, self._start + self._window_ns
        self._ready += [
            AuditRecord(
                action=AUTH_REFUSED,
                actor=address,
                ts_ns=start,
                account_id=account_id,
                target=prefix,
                detail={"reason": reason},
                count=count,
                until_ns=until,
            )
            for (account_id, address, prefix, reason), count in sorted(
                self._counts.items(), key=lambda item: (item[0][1], str(item[0][2]), item[0][3])
            )
        ]
        self._start = None
        self._counts = {}

    def __len__(self) -> int:
        return len(self._counts)
