"""The spool: one SQLite file in WAL mode shared by every km process on the machine.

`SpoolStore` is synchronous and belongs to one thread (the spool writer's, or a test's). Every
write is one `BEGIN IMMEDIATE` transaction, so the 5-8 km processes that typically write the
same file at once queue on SQLite's write lock (for at most `BUSY_TIMEOUT_S`) instead of failing
halfway. Failures surface as the typed errors in `km.spool.errors`, chosen by SQLite result code.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress

import orjson

from km.errors import SpoolError
from km.events import DROPPED, KM, SENT, Event, SessionInfo
from km.private import PrivateFileError, check_companion, check_directory, open_private
from km.spool.errors import (
    SpoolCorrupt,
    SpoolMissing,
    SpoolRefused,
    classify_os,
    classify_sqlite,
)
from km.spool.event_rows import event_rows, insert_steps, step_rows
from km.spool.insight import write_notes
from km.spool.schema import migrate

BUSY_TIMEOUT_S = 5.0  # longest wait for the other km processes' write lock before SpoolBusy
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # after a checkpoint the WAL file shrinks back to this
# SQLite's page cache per connection (its default is 2 MiB). The capture process's writer
# appends at the right edge of the table and of most indexes: half the default took as many
# rows a second under the rate workload and kept ~1 MB of the capture process's peak RSS
# (benchmarks/README.md, "The capture ceiling").
CACHE_KIB = 1024
EVICT_TARGET = 0.9  # eviction stops once the spool's used size is under this share of the cap
EVICT_CHUNK = 2000  # candidate rows read per eviction step
ROW_OVERHEAD = 150  # rough bytes a row costs besides its payload (other columns, 4 indexes)
# Each eviction step deletes rows estimated to cover this share of what is still in excess:
# the estimate can be low (pages free only when empty), so aiming short and repeating keeps
# the spool from being emptied far below the target.
EVICT_STEP_SHARE = 0.5
AGE_BATCH = 2000  # sent events past the age cap deleted per transaction...
AGE_BATCHES = 5  # ...and transactions per eviction check (the rest waits for the next one)

FileIdentity = tuple[int, int]  # (st_dev, st_ino): which file a path named when it was opened

_UPDATE_SESSION_CAPTURE = """
    UPDATE sessions
    SET last_capture_ns = nullif(max(coalesce(last_capture_ns, 0), ?), 0),
        dropped_frames = dropped_frames + ?,
        dropped_bytes = dropped_bytes + ?
    WHERE session_id = ?
"""
_ADD_STAT = """
    INSERT INTO spool_stats (key, value) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET value = value + excluded.value
"""


class SpoolStore:
    """An open spool. Construct with `SpoolStore.open(path, max_bytes)`; `close()` when done."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        max_bytes: int,
        identity: FileIdentity,
        moved_aside: str | None = None,
    ) -> None:
        self._conn = conn
        self._step_rows = step_rows(conn)  # rows per INSERT statement
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s: float | None = None  # sent events older than this are deleted
        self.identity = identity
        self.moved_aside = moved_aside  # where a corrupt file at `path` went, if `open` moved one
        self.notes: list[str] = []  # permissions `open` had to tighten, one line each
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str,
        max_bytes: int,
        *,
        recover: bool = False,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        autocheckpoint_pages: int | None = None,
        max_age_s: float | None = None,
    ) -> SpoolStore:
        """Open (creating it private to this user) and migrate the spool at `path`.
        `max_age_s`: sent events older than this are deleted by the evictions.

        With `recover`, a corrupt file is moved aside (see `recover_corrupt`) and a fresh spool
        created in its place; `moved_aside` then names the old file. `autocheckpoint_pages`
        replaces SQLite's 1000-page automatic checkpoint for this connection (the spool writer
        leaves checkpoints to `km.spool.checkpoint`).
        """
        try:
            store = cls._open(path, max_bytes, busy_timeout_s, autocheckpoint_pages)
        except SpoolCorrupt as exc:
            if not recover:
                raise
            moved = recover_corrupt(path, exc.identity)
            store = cls._open(path, max_bytes, busy_timeout_s, autocheckpoint_pages)
            store.moved_aside = moved
        store.max_age_s = max_age_s
        return store

    @classmethod
    def _open(
        cls, path: str, max_bytes: int, busy_timeout_s: float, autocheckpoint_pages: int | None
    ) -> SpoolStore:
        try:
            identity, notes = _create_private(path)
        except PrivateFileError as exc:
            raise SpoolRefused(path, exc.reason if exc.path == path else str(exc)) from None
        except OSError as exc:
            raise classify_os(path, exc) from exc
        try:
            conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise classify_sqlite(path, exc) from exc
        try:
            _configure(conn, path, busy_timeout_s)
            if autocheckpoint_pages is not None:
                conn.execute(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint_pages):d}")
            migrate(conn, path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                error = classify_sqlite(path, exc)
                if isinstance(error, SpoolCorrupt):
                    error.identity = identity
                raise error from exc
            raise
        store = cls(conn, path, max_bytes, identity)
        store.notes = notes
        return store

    def close(self) -> None:
        self._closed = True
        self._conn.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"SpoolStore({self.path!r}) was never closed", ResourceWarning, stacklevel=1
            )

    def set_busy_timeout(self, seconds: float) -> None:
        """How long the next transactions wait for another process's write lock."""
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000)):d}")
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc

    def is_current(self) -> bool:
        """Whether `path` still names the file this store has open (not moved aside by a km)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity

    # -- sessions ----------------------------------------------------------------------------

    def begin_session(self, info: SessionInfo) -> None:
        """Record a km run. Recording the same session again changes nothing."""
        row = (
            info.session_id,
            info.server,
            orjson.dumps(list(info.command)).decode(),
            info.pid,
            info.host,
            info.started_ns,
            info.km_version,
        )
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (session_id, server, command, pid, host, started_ns,"
                " km_version) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
                row,
            )

    def end_session(self, session_id: str, ended_ns: int, exit_code: int | None) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE sessions SET ended_ns = ?, exit_code = ? WHERE session_id = ?",
                (ended_ns, exit_code, session_id),
            )

    def record_error(self, session_id: str, message: str) -> None:
        """Keep the last problem km met while capturing this session (shown by `km status`)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE sessions SET last_error = ? WHERE session_id = ?", (message, session_id)
            )

    # -- events ------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        """Store `events`, and what the session's analysis attached to them (`Event.notes`:
        findings, definitions, inventory changes), in one transaction. An event id already
        stored is skipped, so a batch retried after an unclear failure is never stored twice
        (its notes are written idempotently too)."""
        if not events:
            return
        steps = insert_steps(event_rows(events), self._step_rows)
        sessions = _session_updates(events)
        notes = [note for e in events if e.notes for note in e.notes]
        with self._transaction() as conn:
            for statement, params in steps:  # in row order
                conn.executemany(statement, params)
            conn.executemany(_UPDATE_SESSION_CAPTURE, sessions)
            if notes:
                write_notes(conn, notes)

    def approve(self, now_ns: int, server: str | None = None, tool: str | None = None) -> int:
        """Pin the current definitions (all, one server's, one tool's); how many were pinned."""
        from km.spool.insight import approve

        with self._transaction() as conn:
            return approve(conn, now_ns, server, tool)

    def used_bytes(self) -> int:
        """Bytes of the database in use: `(page_count - freelist_count) * page_size`."""
        try:
            return self._used_bytes()
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc

    def evict_expired(self, now_ns: int | None = None) -> int:
        """Delete sent (delivered) events older than `max_age_s`, oldest first, in bounded
        batches (at most `AGE_BATCHES` transactions of `AGE_BATCH` rows: the rest goes at the
        next check). Events not yet delivered are never deleted for their age. Returns how many
        were deleted; they are added to `spool_stats` (`expired_events`, `expired_bytes`)."""
        if self.max_age_s is None:
            return 0
        now = time.time_ns() if now_ns is None else now_ns
        cutoff = now - int(self.max_age_s * 1e9)
        oldest = (
            f"SELECT seq, ts_ns, length(payload) FROM events WHERE state = {SENT:d} ORDER BY seq"
        )
        total = 0
        try:
            first = self._conn.execute(oldest + " LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc
        if first is None or first[1] >= cutoff:  # the usual case: one indexed row read
            return 0
        for _ in range(AGE_BATCHES):
            with self._transaction() as conn:
                rows = conn.execute(f"{oldest} LIMIT {AGE_BATCH:d}").fetchall()
                old = [(seq, size) for seq, ts, size in rows if ts < cutoff]
                conn.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s, _ in old])
                if old:
                    nbytes = sum(size for _, size in old)
                    conn.executemany(
                        _ADD_STAT, [("expired_events", len(old)), ("expired_bytes", nbytes)]
                    )
            total += len(old)
            if len(old) < AGE_BATCH:
                break
        return total

    def evict_if_needed(self) -> tuple[int, int]:
        """Delete sent events past the age cap (`evict_expired`); then, past `max_bytes`,
        delete the oldest events (already-sent ones first) until the spool is under
        `EVICT_TARGET` of the cap. Returns (events, payload bytes) evicted for size, which are
        also added to `spool_stats` (`evicted_events`, `evicted_bytes`)."""
        self.evict_expired()
        if self.used_bytes() <= self.max_bytes:
            return (0, 0)
        target = int(self.max_bytes * EVICT_TARGET)
        evicted_events = evicted_bytes = 0
        with self._transaction() as conn:
            for only_sent in (True, False):
                while (excess := self._used_bytes() - target) > 0:
                    aim = max(1, int(excess * EVICT_STEP_SHARE))
                    seqs, nbytes = self._oldest(conn, aim, only_sent)
                    if not seqs:
                        break
                    conn.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in seqs])
                    evicted_events += len(seqs)
                    evicted_bytes += nbytes
            if evicted_events:
                conn.executemany(
                    _ADD_STAT,
                    [("evicted_events", evicted_events), ("evicted_bytes", evicted_bytes)],
                )
        return (evicted_events, evicted_bytes)

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _oldest(conn: sqlite3.Connection, aim: int, only_sent: bool) -> tuple[list[int], int]:
        """The oldest events whose estimated size covers `aim` bytes, and their payload bytes."""
        where = f"WHERE state = {SENT:d} " if only_sent else ""
        cursor = conn.execute(
            f"SELECT seq, length(payload) FROM events {where}ORDER BY seq LIMIT {EVICT_CHUNK:d}"
        )
        seqs: list[int] = []
        payload_bytes = estimate = 0
        for seq, length in cursor:
            seqs.append(seq)
            payload_bytes += length
            estimate += length + ROW_OVERHEAD
            if estimate >= aim:
                break
        cursor.close()
        return seqs, payload_bytes

    def _used_bytes(self) -> int:
        pragma = self._conn.execute
        pages = pragma("PRAGMA page_count").fetchone()[0]
        free = pragma("PRAGMA freelist_count").fetchone()[0]
        page_size = pragma("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * page_size)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._conn, self.path)


def recover_corrupt(path: str, identity: FileIdentity | None = None) -> str | None:
    """Move a corrupt spool and its `-wal`/`-shm` files aside to `<path>.corrupt-<timestamp>`.

    Returns the new name of the database file. With `identity`, the move only happens while
    `path` still names that file; None means another km already moved it (or it is gone) and
    the caller can simply open `path` again.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise classify_os(path, exc) from exc
    if identity is not None and (st.st_dev, st.st_ino) != identity:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = f"{path}.corrupt-{stamp}"
    n = 1
    while os.path.lexists(target):
        n += 1
        target = f"{path}.corrupt-{stamp}-{n}"
    try:
        os.rename(path, target)
        for suffix in ("-wal", "-shm"):
            if os.path.lexists(path + suffix):
                os.rename(path + suffix, target + suffix)
    except OSError as exc:
        raise classify_os(path, exc) from exc
    return target


def _create_private(path: str) -> tuple[FileIdentity, list[str]]:
    """Create the spool's directory (0700) and file (0600) if missing; the file's identity and
    notes on permissions tightened (see `km.private`: a symbolic link, a file or directory of
    another user, or a directory others can write is refused with `PrivateFileError`).

    SQLite gives the `-wal` and `-shm` files it creates the database file's permissions.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    notes = check_directory(directory)
    fd, more = open_private(path, os.O_RDWR, create=True)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    notes += more
    for suffix in ("-wal", "-shm"):
        notes += check_companion(path + suffix)
    return (st.st_dev, st.st_ino), notes


def check_spool_files(path: str) -> None:
    """Refuse (`SpoolRefused`) a spool that is a symbolic link or someone else's, before a
    reader or the uplink opens it by name."""
    try:
        check_directory(os.path.dirname(os.path.abspath(path)))
        fd, _ = open_private(path, os.O_RDONLY)
        os.close(fd)
        for suffix in ("-wal", "-shm"):
            check_companion(path + suffix)
    except PrivateFileError as exc:
        raise SpoolRefused(path, exc.reason if exc.path == path else str(exc)) from None
    except FileNotFoundError:
        return
    except OSError as exc:
        raise classify_os(path, exc) from exc


def open_existing(
    path: str, *, busy_timeout_s: float = BUSY_TIMEOUT_S, cache_kib: int = CACHE_KIB
) -> sqlite3.Connection:
    """An autocommit connection to the spool at `path`, migrated to this km's schema: for the
    spool's other users (the uplink, the live OTLP sender), which may start before the spool
    writer made the file or its tables. Never creates the spool (`SpoolMissing`: the writer
    makes it private), never opens someone else's or one through a planted link."""
    if not os.path.lexists(path):
        raise SpoolMissing(path)
    check_spool_files(path)
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        raise classify_sqlite(path, exc) from exc
    try:
        _configure(conn, path, busy_timeout_s, cache_kib)
        migrate(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise classify_sqlite(path, exc) from exc
        raise
    return conn


def _configure(
    conn: sqlite3.Connection, path: str, busy_timeout_s: float, cache_kib: int = CACHE_KIB
) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000):d}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise SpoolError(path, f"cannot use write-ahead logging (journal_mode is {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT:d}")
    conn.execute(f"PRAGMA cache_size = -{cache_kib:d}")


@contextmanager
def immediate_transaction(conn: sqlite3.Connection, path: str) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` ... `COMMIT` on a spool connection, rolled back on any error, SQLite
    errors raised as typed spool errors. Shared by the writer and the uplink's leases."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            _rollback_quietly(conn)
            raise
    except sqlite3.Error as exc:
        raise classify_sqlite(path, exc) from exc


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # SQLite may already have rolled back by itself (e.g. after SQLITE_FULL).
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _session_updates(events: Sequence[Event]) -> list[tuple[int, int, int, str]]:
    """Per session in `events`: (last capture ns, dropped frames, dropped bytes, session id)."""
    sessions = {e.session_id for e in events}
    if len(sessions) == 1:  # a capture process's batch: comprehensions, no dict look-up per event
        ts = max(0, max([e.ts_ns for e in events if e.direction != KM], default=0))
        frames = nbytes = 0
        for e in [e for e in events if e.kind == DROPPED]:
            f, b = _dropped_counts(e.payload)
            frames += f
            nbytes += b
        return [(ts, frames, nbytes, sessions.pop())]
    acc: dict[str, list[int]] = {}
    for e in events:
        entry = acc.get(e.session_id)
        if entry is None:
            entry = acc[e.session_id] = [0, 0, 0]
        if e.direction != KM and e.ts_ns > entry[0]:
            entry[0] = e.ts_ns
        if e.kind == DROPPED:
            frames, nbytes = _dropped_counts(e.payload)
            entry[1] += frames
            entry[2] += nbytes
    return [(ts, frames, nbytes, sid) for sid, (ts, frames, nbytes) in acc.items()]


def _dropped_counts(payload: bytes) -> tuple[int, int]:
    """(frames, bytes) from a DROPPED event's JSON payload; (0, 0) if it does not say."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return (0, 0)
    if not isinstance(doc, dict):
        return (0, 0)
    frames, nbytes = doc.get("frames"), doc.get("bytes")
    if not isinstance(frames, int) or not isinstance(nbytes, int):
        return (0, 0)
    return (frames, nbytes)
