"""WAL checkpoints off the capture path, at the lowest CPU priority.

A checkpoint copies committed pages from the write-ahead log into the database file and syncs
both. SQLite runs one, by default, inside whichever commit takes the WAL past 1000 pages: for
the spool writer that is the capture path, and it doubles the cost of storing a large payload
(each page is read back, written again and synced). So the writer's own automatic checkpoint is
pushed out to a backstop (`BACKSTOP_PAGES`, set by `SpoolStore.open`), and this thread, at nice
19, runs PASSIVE checkpoints (which never wait for, nor block, writers and readers) once the
writer has been quiet for `QUIET_S`, or `MAX_DEFER_S` after the last one. A burst of traffic
(the MCP session's busiest moment) thus pays only for its WAL writes; the copying comes after
it, on CPU time the session does not need. Under load that never pauses, the timer and the
writer's backstop bound the WAL.

Failures are not reported: a checkpoint that cannot run now (another km's checkpoint, a busy
reader, a full disk) leaves the WAL as it was, and the next one, or the writer's, catches up.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import suppress

from km.priority import lower_this_thread

BACKSTOP_PAGES = 8192  # the writer checkpoints itself past this many WAL pages (32 MiB at 4 KiB)
QUIET_S = 0.25  # no commit for this long: the burst is over, checkpoint now
MAX_DEFER_S = 30.0  # checkpoint at least this often while commits keep coming
BUSY_TIMEOUT_MS = 100  # a PASSIVE checkpoint only waits on SQLite's own locks briefly


class Checkpointer:
    """Runs PASSIVE checkpoints of the spool at `path` on a low-priority daemon thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._dirty = False  # something was committed since the last checkpoint
        self._last_commit = 0.0  # monotonic
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # PASSIVE checkpoints that ran
        self.native_id: int | None = None  # the thread's id, once it runs

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="km-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """The writer committed a batch (cheap: called after every commit)."""
        self._last_commit = time.monotonic()
        if not self._dirty:
            self._dirty = True
            self._wake.set()

    def stop(self, timeout: float) -> None:
        """Stop without a last checkpoint (SQLite runs one when the last connection closes)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        lower_this_thread()
        conn: sqlite3.Connection | None = None
        last_checkpoint = time.monotonic()
        try:
            while not self._stop.is_set():
                if not self._dirty:
                    self._wake.wait()  # until the first commit after a checkpoint
                    self._wake.clear()
                    continue
                self._stop.wait(QUIET_S)
                now = time.monotonic()
                if self._stop.is_set():
                    break
                if not checkpoint_due(now, self._last_commit, last_checkpoint):
                    continue
                self._dirty = False
                last_checkpoint = now
                if conn is None:
                    conn = _connect(self._path)
                if conn is not None and _checkpoint(conn):
                    self.checkpoints += 1
        finally:
            if conn is not None:
                with suppress(sqlite3.Error):
                    conn.close()


def checkpoint_due(now: float, last_commit: float, last_checkpoint: float) -> bool:
    """With something committed since the last checkpoint: whether to checkpoint at `now`."""
    return now - last_commit >= QUIET_S or now - last_checkpoint >= MAX_DEFER_S


def _connect(path: str) -> sqlite3.Connection | None:
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error:
        return None
    return conn


def _checkpoint(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error:
        return False
    return True
