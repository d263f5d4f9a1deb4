"""The live OTLP uplink: with `KM_OTLP_ENDPOINT` set, a capture process also sends each
exchange, as it completes, as an MCP span (km.export.otlp) to that OTLP/HTTP endpoint.

One daemon thread per km process, of which one per spool sends (a file lock, like the API
uplink's). Its delivery state is its own row of `export_cursors` (name `otlp`): the spool seq
up to which everything was sent. A batch is read after the cursor, sent, and only then the
cursor moves, so an endpoint that is down (or answers garbage) costs nothing but a retry with
backoff; the spool and the API uplink are untouched. A first start begins at the spool's end
(what happens from now on, and all of the capture process's own session); a restart goes on
from the cursor. A span goes out when its reply
is captured (the request is looked up by the reply's link); a request never answered is not
sent live (`km export --format otlp` shows it, marked unanswered).

Nothing of this is imported unless an endpoint is configured; the OpenTelemetry SDK is imported
on the sender's thread, at lowest priority.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from km.priority import lower_this_thread
from km.spool.errors import SpoolMissing

NAME = "otlp"
LOCK_SUFFIX = ".otlp.lock"
BATCH = 500  # events read a pass
POLL_S = 0.5  # idle: look for new events this often
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # after failed sends, in turn (the last repeats)
STOP_JOIN_S = 3.0
SEND_TIMEOUT_S = 3.0  # one send, the SDK's retries included: a session's end waits at most this
CACHE_KIB = 256  # the sender's page cache: it reads a batch at a time
FIRST_LOOKBACK_NS = 10 * 10**9  # a first start also sends what the last 10 s captured
_COLUMNS = "seq, id, session_id, server, direction, ts_ns, kind, method, rpc_id, link_id, payload"
_INSIGHT = ("tool", "status", "tokens", "risk")


class OtlpHandle:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.active = False  # this process holds the lock and sends
        self.started_ns = 0
        self.session_id: str | None = None
        self.error: str | None = None

    def stop(self, timeout: float = STOP_JOIN_S) -> bool:
        """Ask for a last pass and wait at most `timeout` for it. Never raises."""
        try:
            self.stopping.set()
            if self.thread is not None:
                self.thread.join(max(0.0, timeout))
                return not self.thread.is_alive()
            return True
        except BaseException:
            return False


def start_otlp_uplink(endpoint: str, spool_path: str, session_id: str | None = None) -> OtlpHandle:
    """Start the sender thread; `session_id` is the capture process's own session, whose events
    a first start sends however long the process took to get here."""
    handle = OtlpHandle()
    handle.session_id = session_id
    handle.started_ns = time.time_ns()  # before any slow import: where a first start begins
    try:
        handle.thread = threading.Thread(
            target=_main, args=(handle, endpoint, spool_path), name="km-otlp", daemon=True
        )
        handle.thread.start()
    except BaseException as exc:
        handle.error = f"cannot start the OTLP thread: {exc!r}"
    return handle


def _main(handle: OtlpHandle, endpoint: str, spool_path: str) -> None:
    try:
        fd = _lock(handle, spool_path)
        if fd is None:
            return
        try:
            handle.active = True
            lower_this_thread()
            sender = LiveSender(
                spool_path, endpoint, started_ns=handle.started_ns, session_id=handle.session_id
            )
            try:
                sender.run(handle.stopping)
            finally:
                sender.close()
        finally:
            os.close(fd)
    except BaseException as exc:
        handle.error = repr(exc)
        try:
            sys.stderr.write(f"km: OTLP uplink stopped: {exc}\n")
        except BaseException:
            pass


def _lock(handle: OtlpHandle, spool_path: str) -> int | None:
    from km.uplink.background import LEADER_POLL_S, _try_lock

    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    while True:  # one try even when stopped already: a short session still gets its last pass
        try:
            fd = os.open(spool_path + LOCK_SUFFIX, flags, 0o600)
        except OSError:
            fd = -1
        if fd >= 0:
            if _try_lock(fd):
                return fd
            os.close(fd)
        if handle.stopping.is_set():
            return None
        handle.stopping.wait(LEADER_POLL_S)


class LiveSender:
    """Reads the spool after its cursor, sends spans, moves the cursor. Owns one connection."""

    def __init__(
        self,
        spool_path: str,
        endpoint: str,
        *,
        clock: Callable[[], int] = time.time_ns,
        started_ns: int | None = None,
        session_id: str | None = None,
    ):
        from km.export.otlp_sdk import SpanWriter, http_exporters

        self.path = spool_path
        self.endpoint = endpoint
        self.clock = clock
        self.started_ns = clock() if started_ns is None else started_ns
        self.session_id = session_id
        self.conn: sqlite3.Connection | None = None  # opened on first use: see `_db`
        self.select = f"{_COLUMNS}, {', '.join(_INSIGHT)}"
        self.spans, self.metrics = http_exporters(endpoint, SEND_TIMEOUT_S)
        self.writer = SpanWriter(self.spans, where=endpoint, batch=10**9)
        self.protocols: dict[str, str | None] = {}
        self.failures = 0

    def close(self) -> None:
        try:
            self.writer.close()
            self.spans.shutdown()  # type: ignore[no-untyped-call]
            self.metrics.shutdown()
        finally:
            if self.conn is not None:
                self.conn.close()

    def run(self, stopping: threading.Event) -> None:
        while True:
            last = stopping.is_set()
            sent = self.step()
            if last:
                return  # the last pass after stop() was asked
            if sent is None:  # failed: back off, but a stop still gets its last try
                wait = BACKOFF_S[min(self.failures - 1, len(BACKOFF_S) - 1)]
                stopping.wait(wait)
            elif sent == 0:
                stopping.wait(POLL_S)

    def _db(self) -> sqlite3.Connection:
        """The spool's connection, opened and migrated on first use. The sender's thread can
        get here before the spool writer made the spool's file (`SpoolMissing`: try again
        later) or its tables (migrating makes them, as the writer would)."""
        if self.conn is None:
            from km.spool.store import open_existing

            self.conn = open_existing(self.path, cache_kib=CACHE_KIB)
        return self.conn

    def cursor(self) -> int:
        db = self._db()
        row = db.execute("SELECT seq FROM export_cursors WHERE name = ?", [NAME]).fetchone()
        if row is not None:
            return int(row[0])
        start = db.execute(
            "SELECT min(coalesce(max(seq), 0),"
            " coalesce((SELECT min(seq) - 1 FROM events WHERE session_id = ?), 1 << 62))"
            " FROM events WHERE ts_ns < ?",
            [self.session_id, self.started_ns - FIRST_LOOKBACK_NS],
        ).fetchone()[0]
        self._save(int(start), 0, None)
        return int(start)

    def step(self) -> int | None:
        """One pass: the number of events moved past (0: nothing new), None when sending
        failed (the cursor stays)."""
        try:
            after = self.cursor()
        except SpoolMissing:
            return 0  # nothing captured here yet
        rows = self._rows(f"SELECT {self.select} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                          [after, BATCH])  # fmt: skip
        if not rows:
            return 0
        from km.export.otlp import ERROR, NOTIFICATION, RESPONSE, span_of
        from km.export.otlp_sdk import OtlpError

        count = 0
        for event in rows:
            kind = event["kind"]
            if kind in (RESPONSE, ERROR) and event["link_id"]:
                request = self._request(event["link_id"])
                if request is not None:
                    self.writer.write(span_of(request, event, self._protocol(event)))
                    count += 1
            elif kind == NOTIFICATION:
                self.writer.write(span_of(event, None, self._protocol(event)))
                count += 1
        try:
            self.writer.flush()
        except OtlpError as exc:
            self.failures += 1
            self._save(after, 0, str(exc), failed=True)
            return None
        self.failures = 0
        self._save(int(rows[-1]["seq"]), count, None)
        return len(rows)

    def _rows(self, sql: str, params: list[object]) -> list[dict[str, Any]]:
        cur = self._db().execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _request(self, event_id: str) -> dict[str, Any] | None:
        found = self._rows(f"SELECT {self.select} FROM events WHERE id = ?", [event_id])
        return found[0] if found else None

    def _protocol(self, event: dict[str, Any]) -> str | None:
        from km.export.otlp import protocol_from

        sid = event["session_id"]
        if sid not in self.protocols:
            rows = self._rows(
                f"SELECT {self.select} FROM events WHERE session_id = ? AND method = 'initialize'"
                " AND kind = 'response' ORDER BY seq LIMIT 1",
                [sid],
            )
            self.protocols[sid] = protocol_from(rows[0]) if rows else None
        return self.protocols[sid]

    def _save(self, seq: int, sent: int, error: str | None, *, failed: bool = False) -> None:
        self._db().execute(
            "INSERT INTO export_cursors (name, seq, sent, attempts, last_error, updated_ns)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq,"
            " sent = sent + excluded.sent, attempts = CASE WHEN ? THEN attempts + 1 ELSE 0 END,"
            " last_error = excluded.last_error, updated_ns = excluded.updated_ns",
            [NAME, seq, sent, int(failed), error, self.clock(), int(failed)],
        )
