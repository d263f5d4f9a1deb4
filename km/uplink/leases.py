"""Leases on spool rows, so that several km processes never send the same event at once.

`claim()` takes, in one `BEGIN IMMEDIATE` transaction, the oldest deliverable rows: PENDING
ones, and IN_FLIGHT ones whose lease has expired (their uplink died or hung). It marks them
IN_FLIGHT with this uplink's `owner` and `lease_until_ns` = now + `lease_s`. The outcome is
then written only where the lease is still ours: `mark_sent`, `quarantine` (with the server's
reason) or `release` (back to PENDING, `attempts + 1`, `last_error`). If our lease expired and
another uplink claimed the row meanwhile, our late write changes nothing and the other uplink's
send comes back from the server as a duplicate (ingestion is idempotent on the event id).

Leases use the wall clock (`time.time_ns`), the only clock km processes share. A clock step
can only make a lease expire early, which costs a duplicate send, never a lost event.

`LeaseStore` has its own SQLite connection (not the spool writer's) and belongs to one thread.
Every text it stores goes through `scrub` first, so the API key never lands in the spool.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from km.events import IN_FLIGHT, PENDING, QUARANTINED, SENT
from km.spool.errors import classify_sqlite
from km.spool.store import immediate_transaction, open_existing
from km.uplink.batches import SpoolRow, claim_count, estimate_encoded

T = TypeVar("T")

DEFAULT_LEASE_S = 60.0  # longer than any request may take (see client.REQUEST_TIMEOUT_S)
BUSY_TIMEOUT_S = 5.0  # longest wait for the other km processes' write lock
IN_CHUNK = 500  # seqs per `IN (...)` list: far below SQLite's variable limit
# SQLite's page cache for this connection, KiB (its default is 2,000). A claim reads the next
# rows and its settle rewrites them; older pages are not read again, so a larger cache only
# holds ~2 MB more in the delivering capture process (a page read again comes from the OS).
CACHE_KIB = 256

SESSION_CACHE_MAX = 10_000  # sessions whose host and km version are remembered
_ROW_COLUMNS = (
    "seq, id, session_id, server, direction, ts_ns, kind, method, rpc_id, size, payload,"
    " truncated, link_id, latency_us, attempts, tool, status, tokens, risk"
)
_NO_SESSION: tuple[str | None, str | None] = (None, None)


_PUT_STATE = (
    "INSERT INTO uplink_state (key, value, number, at_ns) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, number = excluded.number,"
    " at_ns = excluded.at_ns"
)

StateItem = tuple[str, str | None, int | None, int]  # uplink_state (key, value, number, at_ns)


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is left to deliver, as seen at one moment."""

    pending: int  # PENDING
    expired: int  # IN_FLIGHT with an expired lease: deliverable again
    leased: int  # IN_FLIGHT under a live lease (ours or another uplink's)

    @property
    def deliverable(self) -> int:
        return self.pending + self.expired


@dataclass(frozen=True, slots=True)
class Settled:
    sent: int
    quarantined: int
    released: int


def new_owner() -> str:
    """A lease owner id unique to one uplink instance: host, pid and random bits."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _no_scrub(text: str) -> str:
    return text


class LeaseStore:
    """Claims and outcomes on one spool. `LeaseStore.open(path, ...)`; `close()` when done."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        owner: str,
        lease_s: float,
        scrub: Callable[[str], str],
    ) -> None:
        self._conn = conn
        self.path = path
        self.owner = owner
        self.lease_s = lease_s
        self._scrub = scrub
        self._sessions: dict[str, tuple[str | None, str | None]] = {}
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str,
        *,
        owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        scrub: Callable[[str], str] = _no_scrub,
    ) -> LeaseStore:
        """Open an existing spool (never create one: `SpoolMissing`), migrating it if needed."""
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        conn = open_existing(path, busy_timeout_s=busy_timeout_s, cache_kib=CACHE_KIB)
        return cls(conn, path, owner or new_owner(), lease_s, scrub)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"LeaseStore({self.path!r}) was never closed", ResourceWarning, stacklevel=1
            )

    # -- claims ------------------------------------------------------------------------------

    def claim(self, max_events: int, max_bytes: int, now_ns: int | None = None) -> list[SpoolRow]:
        """Lease the oldest deliverable rows: at most `max_events`, and about `max_bytes` of
        encoded events (estimated from payload sizes; at least one row). Ordered by seq."""
        now = time.time_ns() if now_ns is None else now_ns
        until = now + int(self.lease_s * 1e9)
        if not self._anything_deliverable(now):
            return []  # the usual idle case: no write lock taken
        # Rows are chosen from a read snapshot, leased by UPDATEs under the write lock, and
        # read back after the commit, so the lock is held for the UPDATEs alone: fetching 250
        # rows inside it (one step each, each a hand-off of the GIL) kept the spool writer of
        # the same capture process waiting (benchmarks/README.md, "Writes that wait").
        conn = self._conn
        try:
            # Two index range scans on (state, seq) rather than one OR, which would sort.
            pending = conn.execute(
                "SELECT seq, length(payload) FROM events WHERE state = ? ORDER BY seq LIMIT ?",
                (PENDING, max_events),
            ).fetchall()
            expired = conn.execute(
                "SELECT seq, length(payload) FROM events WHERE state = ? AND lease_until_ns <= ?"
                " ORDER BY seq LIMIT ?",
                (IN_FLIGHT, now, max_events),
            ).fetchall()
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc
        candidates = pending + expired
        if not candidates:
            return []
        candidates.sort()
        sizes = [estimate_encoded(length or 0) for _, length in candidates]
        chosen = candidates[: claim_count(sizes, max_events, max_bytes)]
        chosen_seqs = {seq for seq, _ in chosen}
        fresh = [seq for seq, _ in pending if seq in chosen_seqs]
        stale = [seq for seq, _ in expired if seq in chosen_seqs]
        with self._transaction() as conn:
            # The states are checked again: another uplink (`km sync`) may have taken rows
            # since the snapshot. New rows only come after the range (seq grows).
            if fresh:
                conn.execute(
                    "UPDATE events SET state = ?, lease_owner = ?, lease_until_ns = ?"
                    " WHERE state = ? AND seq BETWEEN ? AND ?",
                    (IN_FLIGHT, self.owner, until, PENDING, fresh[0], fresh[-1]),
                )
            for chunk in _chunks(stale):
                conn.execute(
                    f"UPDATE events SET state = ?, lease_owner = ?, lease_until_ns = ?"
                    f" WHERE state = ? AND lease_until_ns <= ? AND seq IN ({_marks(chunk)})",
                    (IN_FLIGHT, self.owner, until, IN_FLIGHT, now, *chunk),
                )
        try:
            raw: list[Any] = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM events WHERE state = ? AND seq BETWEEN ? AND ?"
                " AND lease_owner = ? AND lease_until_ns = ? ORDER BY seq",
                (IN_FLIGHT, chosen[0][0], chosen[-1][0], self.owner, until),
            ).fetchall()
            hosts = self._hosts(conn, {r[2] for r in raw})
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc
        return [_row(r, hosts.get(r[2], _NO_SESSION)) for r in raw]

    def _hosts(
        self, conn: sqlite3.Connection, session_ids: set[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        """(host, km_version) of each session, from a cache (sessions never change them)."""
        missing = [sid for sid in session_ids if sid not in self._sessions]
        for chunk in _chunks(missing):
            for sid, host, version in conn.execute(
                f"SELECT session_id, host, km_version FROM sessions"
                f" WHERE session_id IN ({_marks(chunk)})",
                chunk,
            ):
                self._sessions[sid] = (host, version)
        if len(self._sessions) > SESSION_CACHE_MAX:
            self._sessions.clear()
        return self._sessions

    def mark_sent(self, seqs: Sequence[int]) -> int:
        """SENT where the lease is still ours; returns how many rows changed."""
        return self.settle(sent=seqs).sent

    def quarantine(self, items: Sequence[tuple[int, str]]) -> int:
        """QUARANTINED with the server's reason, where the lease is still ours."""
        return self.settle(quarantined=items).quarantined

    def release(self, seqs: Sequence[int], error: str | None, *, attempted: bool = True) -> int:
        """Back to PENDING where the lease is still ours. `attempted`: a request was made (its
        failure is counted in `attempts` and kept in `last_error`); False when giving back rows
        never sent (shutting down, paused)."""
        return self.settle(released=seqs, error=error, attempted=attempted).released

    def renew(self, seqs: Sequence[int], now_ns: int | None = None) -> int:
        """Extend our leases on `seqs` to now + `lease_s`; how many are still ours."""
        now = time.time_ns() if now_ns is None else now_ns
        until = now + int(self.lease_s * 1e9)
        renewed = 0
        with self._transaction() as conn:
            for chunk in _chunks(seqs):
                renewed += conn.execute(
                    f"UPDATE events SET lease_until_ns = ? WHERE seq IN ({_marks(chunk)})"
                    f" AND state = ? AND lease_owner = ?",
                    (until, *chunk, IN_FLIGHT, self.owner),
                ).rowcount
        return renewed

    def release_all(self) -> int:
        """Give back every row this owner still holds (shutting down), attempts unchanged."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE events SET state = ?, lease_owner = NULL, lease_until_ns = NULL"
                " WHERE state = ? AND lease_owner = ?",
                (PENDING, IN_FLIGHT, self.owner),
            )
            return int(cursor.rowcount)

    def settle(
        self,
        *,
        sent: Sequence[int] = (),
        quarantined: Sequence[tuple[int, str]] = (),
        released: Sequence[int] = (),
        error: str | None = None,
        attempted: bool = True,
        states: Sequence[StateItem] = (),
        drop_states: Sequence[str] = (),
    ) -> Settled:
        """Write one request's outcome, and any uplink state, in one transaction; every row
        change only where the lease is still ours. Returns the rows changed, by kind."""
        text = None if error is None else self._scrub(error)
        with self._transaction() as conn:
            n_sent = n_quarantined = n_released = 0
            for chunk in _chunks(sent):
                n_sent += conn.execute(
                    f"UPDATE events SET state = ?, lease_owner = NULL, lease_until_ns = NULL,"
                    f" last_error = NULL WHERE seq IN ({_marks(chunk)}) AND state = ?"
                    f" AND lease_owner = ?",
                    (SENT, *chunk, IN_FLIGHT, self.owner),
                ).rowcount
            if quarantined:
                n_quarantined = conn.executemany(
                    "UPDATE events SET state = ?, lease_owner = NULL, lease_until_ns = NULL,"
                    " attempts = attempts + 1, last_error = ? WHERE seq = ? AND state = ?"
                    " AND lease_owner = ?",
                    [
                        (QUARANTINED, self._scrub(reason), seq, IN_FLIGHT, self.owner)
                        for seq, reason in quarantined
                    ],
                ).rowcount
            for chunk in _chunks(released):
                n_released += conn.execute(
                    f"UPDATE events SET state = ?, lease_owner = NULL, lease_until_ns = NULL,"
                    f" attempts = attempts + ?, last_error = coalesce(?, last_error)"
                    f" WHERE seq IN ({_marks(chunk)}) AND state = ? AND lease_owner = ?",
                    (PENDING, int(attempted), text, *chunk, IN_FLIGHT, self.owner),
                ).rowcount
            if states:
                conn.executemany(_PUT_STATE, [self._state_row(item) for item in states])
            if drop_states:
                conn.executemany(
                    "DELETE FROM uplink_state WHERE key = ?", [(key,) for key in drop_states]
                )
        return Settled(int(n_sent), int(n_quarantined), int(n_released))

    def _anything_deliverable(self, now: int) -> bool:
        try:
            row = self._conn.execute(
                "SELECT EXISTS (SELECT 1 FROM events WHERE state = ?) OR EXISTS (SELECT 1"
                " FROM events WHERE state = ? AND lease_until_ns <= ?)",
                (PENDING, IN_FLIGHT, now),
            ).fetchone()
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc
        return bool(row[0])

    def backlog(self, now_ns: int | None = None) -> Backlog:
        now = time.time_ns() if now_ns is None else now_ns
        try:
            (pending,) = self._conn.execute(
                "SELECT count(*) FROM events WHERE state = ?", (PENDING,)
            ).fetchone()
            expired, leased = self._conn.execute(
                "SELECT coalesce(sum(lease_until_ns <= ?), 0), coalesce(sum(lease_until_ns > ?), 0)"
                " FROM events WHERE state = ?",
                (now, now, IN_FLIGHT),
            ).fetchone()
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc
        return Backlog(int(pending), int(expired), int(leased))

    # -- shared uplink state (for `km status`) -----------------------------------------------

    def put_state(
        self, key: str, value: str | None, number: int | None = None, at_ns: int | None = None
    ) -> None:
        at = time.time_ns() if at_ns is None else at_ns
        self.settle(states=[(key, value, number, at)])

    def delete_state(self, key: str) -> None:
        self.settle(drop_states=[key])

    def _state_row(self, item: StateItem) -> tuple[str, str | None, int | None, int]:
        key, value, number, at = item
        return (key, None if value is None else self._scrub(value), number, at)

    def get_state(self, key: str) -> tuple[str | None, int | None, int] | None:
        try:
            row = self._conn.execute(
                "SELECT value, number, at_ns FROM uplink_state WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc
        return None if row is None else (row[0], row[1], row[2])

    # -- internals ---------------------------------------------------------------------------

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._conn, self.path)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def _marks(chunk: Sequence[object]) -> str:
    return ",".join("?" * len(chunk))


def _row(r: Any, session: tuple[str | None, str | None]) -> SpoolRow:
    """A `SELECT {_ROW_COLUMNS}` row (SQLite hands back the types the columns were written
    as) and its session's (host, km_version)."""
    return SpoolRow(
        seq=r[0],
        id=r[1],
        session_id=r[2],
        server=r[3],
        direction=r[4],
        ts_ns=r[5],
        kind=r[6],
        method=r[7],
        rpc_id=r[8],
        size=r[9],
        payload=bytes(r[10]),
        truncated=bool(r[11]),
        link_id=r[12],
        latency_us=r[13],
        host=session[0],
        km_version=session[1],
        attempts=r[14],
        tool=r[15],
        status=r[16],
        tokens=r[17],
        risk=r[18],
    )
