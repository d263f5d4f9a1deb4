"""The event store's interface and the small values that cross it.

Two backends implement `EventStore` (embedded SQLite, PostgreSQL) and pass the same tests.
Every method is scoped by `account_id` where events are concerned: the HTTP layer passes the
account of the authenticated key and no method can reach another account's rows.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from km.insight.filter import Filter
    from km.server.stores.insight import (
        Analyser,
        FindingFilter,
        InsightWrites,
        Inventory,
        Pin,
        StoredDefinition,
        StoredFinding,
    )

from km.server.audit import OPERATOR, AuditEntry, AuditRecord
from km.server.retention import DEFAULT_DAYS

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    created_ns: int
    retention_days: int = DEFAULT_DAYS


@dataclass(slots=True)
class RetentionReport:
    """What one enforcement run did."""

    events_deleted: int = 0
    sessions_deleted: int = 0
    rollups_deleted: int = 0
    audit_deleted: int = 0
    findings_deleted: int = 0
    changes_deleted: int = 0  # definition_changes rows
    definitions_deleted: int = 0  # tool_definitions not seen since the cutoff
    partitions_dropped: list[str] = field(default_factory=list)
    partitions_created: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.events_deleted or self.sessions_deleted or self.rollups_deleted
            or self.audit_deleted or self.findings_deleted or self.changes_deleted
            or self.definitions_deleted or self.partitions_dropped or self.partitions_created
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored key: never the key itself, only its SHA-256 (hex) and a display prefix."""

    id: int
    account_id: int
    account_name: str
    key_hash: str
    prefix: str
    label: str | None
    created_ns: int
    revoked_ns: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_ns is not None


@dataclass(slots=True)
class IngestEvent:
    """One validated event, as ingested and as read back. Not frozen: it is made once per
    event on ingest, and a frozen `__init__` of its 21 fields cost ~4 us there against ~0.3 us
    (benchmarks/test_bench_ingest.py); treat it as a value all the same (`dataclasses.replace`).

    `id` is the canonical lower-case UUID. `payload` holds the bytes (after redaction);
    `payload_encoding` says how the client sent them ("utf8" or "base64") and is how they are
    returned.
    """

    id: str
    session_id: str
    server: str
    direction: str
    ts_ns: int
    kind: str
    size: int
    payload: bytes
    payload_encoding: str
    method: str | None = None
    rpc_id: str | None = None
    truncated: bool = False
    link_id: str | None = None
    latency_us: int | None = None
    host: str | None = None
    km_version: str | None = None
    # What the event means (km.insight): sent by a km that computes them, else filled in on
    # ingest. `analysed` says whether the client sent them (not stored).
    tool: str | None = None
    status: str | None = None
    tokens: int | None = None
    risk: int | None = None
    analysed: bool = True


@dataclass(frozen=True, slots=True)
class SessionSummary:
    session_id: str
    server: str
    host: str | None
    first_ts_ns: int
    last_ts_ns: int
    events: int
    errors: int


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Read-side filters; `None` means any. The time range is half-open: [since_ns, until_ns)."""

    session_id: str | None = None
    server: str | None = None
    method: str | None = None
    direction: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    tool: str | None = None
    query: Filter | None = None  # `q=`: the filter language (km.insight.filter)


@dataclass(frozen=True, slots=True)
class HourStat:
    """One hourly rollup row with its latency percentiles already estimated."""

    server: str
    method: str | None
    hour_ns: int  # start of the hour, Unix ns
    count: int
    errors: int
    bytes: int
    latency_p50_us: int | None
    latency_p95_us: int | None
    tool: str | None = None
    tool_errors: int = 0
    tokens: int = 0
    tokens_out: int = 0  # of client-to-server events (output tokens); the rest is input


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Ids (canonical) newly stored, and ids this account had already stored."""

    accepted: tuple[str, ...]
    duplicates: tuple[str, ...]


class EventStore(abc.ABC):
    """Where accounts, keys and events live. Open with the backend's `open()` classmethod,
    then `migrate()`; `close()` when done. Errors: `StoreUnavailable` (retry later),
    `StoreError` (anything else the store reports), `BadCursor` on a cursor it did not issue."""

    @abc.abstractmethod
    async def migrate(self) -> int:
        """Bring the schema up to date; return the version found before."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection. Idempotent; later calls raise `StoreUnavailable`."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the store answers a trivial query, else raise `StoreUnavailable`."""

    # Accounts and keys (the operator's side, through `km serve keys ...`).

    @abc.abstractmethod
    async def create_account(self, name: str, *, actor: str = OPERATOR) -> Account:
        """The account named `name`, created (and audited) if it does not exist yet."""

    @abc.abstractmethod
    async def list_accounts(self) -> list[Account]: ...

    @abc.abstractmethod
    async def create_key(
        self,
        account_id: int,
        key_hash: str,
        prefix: str,
        label: str | None,
        *,
        actor: str = OPERATOR,
    ) -> ApiKeyRecord:
        """A new key, audited in the same transaction."""

    @abc.abstractmethod
    async def find_key(self, key_hash: str) -> ApiKeyRecord | None: ...

    @abc.abstractmethod
    async def list_keys(self) -> list[ApiKeyRecord]: ...

    @abc.abstractmethod
    async def revoke_key(self, key_id: int, *, actor: str = OPERATOR) -> ApiKeyRecord | None:
        """Revoke (idempotently; audited the first time); `None` when there is no such key."""

    @abc.abstractmethod
    async def set_retention(
        self, account_id: int, days: int, *, actor: str = OPERATOR
    ) -> tuple[int, int] | None:
        """Set an account's retention (1-365 days); (before, after), audited when it changed;
        `None` when there is no such account."""

    # The audit log.

    @abc.abstractmethod
    async def record_audit(self, records: Sequence[AuditRecord]) -> None:
        """Store audit rows that are not part of another action (refused sign-in roll-ups)."""

    @abc.abstractmethod
    async def list_audit(
        self, account_id: int | None, cursor: str | None, limit: int
    ) -> Page[AuditEntry]:
        """Newest first (by time, then id). `account_id` None: every row, also those of no
        account (refused sign-ins with a key nobody has): the operator's view."""

    @abc.abstractmethod
    async def enforce_retention(self, now_ns: int) -> RetentionReport:
        """Delete what is past each account's retention, in bounded steps (no long locks),
        and on PostgreSQL make the partitions of the days ahead and drop those behind."""

    # Events (the API's side, always for one account).

    @abc.abstractmethod
    async def ingest(
        self,
        account_id: int,
        events: Sequence[IngestEvent],
        insight: InsightWrites | Analyser | None = None,
    ) -> IngestResult:
        """Store the events this account does not have yet, in one transaction together with
        their session and hourly rollup counts and their insight: an `Analyser` is called
        with exactly the new events (their fields filled in where it says so, its rows
        written); `InsightWrites` are written for the rows whose event is new.
        Events must have distinct ids."""

    @abc.abstractmethod
    async def list_sessions(
        self, account_id: int, cursor: str | None, limit: int, query: Filter | None = None
    ) -> Page[SessionSummary]:
        """Newest first (by first event time, then session id); with `query`, only sessions
        with at least one event it selects."""

    @abc.abstractmethod
    async def list_events(
        self, account_id: int, filters: EventFilter, cursor: str | None, limit: int
    ) -> Page[IngestEvent]:
        """Oldest first (by ts_ns, then id): stable keyset pagination."""

    @abc.abstractmethod
    async def stats(
        self, account_id: int, since_ns: int | None, until_ns: int | None
    ) -> list[HourStat]:
        """Hourly rollups whose hour overlaps [since_ns, until_ns), by hour, server, method."""

    # The insight core's tables (always for one account).

    @abc.abstractmethod
    async def list_findings(
        self, account_id: int, filters: FindingFilter, cursor: str | None, limit: int
    ) -> Page[StoredFinding]:
        """Oldest first (by ts_ns, then id): stable keyset pagination."""

    @abc.abstractmethod
    async def definitions(self, account_id: int, server: str | None) -> list[StoredDefinition]:
        """Every version of every definition of the account's servers (or of one)."""

    @abc.abstractmethod
    async def pins(self, account_id: int, server: str) -> list[Pin]:
        """The approved definitions of one server of the account."""

    @abc.abstractmethod
    async def inventory(self, account_id: int, server: str | None) -> Inventory:
        """Definitions, their changes and the pins, of every server (or one)."""

    @abc.abstractmethod
    async def approve(self, account_id: int, server: str, tool: str | None) -> list[Pin]:
        """Pin the current definition of each tool of `server` (or of `tool` only); the pins
        set, none when the server or tool is unknown."""
