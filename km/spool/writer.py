"""The spool writer: one daemon thread that turns queued frames into spool rows.

It is the only consumer of the `CaptureQueue` the forwarding threads fill. It processes frames in
slices (so the forwarding threads get the GIL back quickly), commits them in batches (at most
~100 commits a second, however fast frames arrive) and evicts old events now and then.

km's own failures never stop forwarding, and this thread never dies of one:
- `SpoolBusy` (other km processes held the write lock for the whole busy timeout): retry.
- `SpoolFull`, `SpoolUnwritable`, other spool errors: one `km: ...` line on stderr, retry with
  backoff (up to `BACKOFF_MAX_S`). Meanwhile one batch (at most `queue_max_bytes` worth) waits
  here and the rest waits in the capture queue, whose own `queue_max_bytes` bound drops (and
  counts) what does not fit. The counts become a DROPPED event once writing works again.
- `SpoolCorrupt`: the file is moved aside (one stderr line says where) and a fresh spool started.
- Anything unexpected: one stderr line, capture off; the queue is still drained (and counted as
  lost) so memory stays bounded.

Importing this module is cheap (threading, os, time, the error classes): sqlite3, orjson,
platformdirs and dataclasses load on the writer thread itself.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress

from km.errors import SpoolError
from km.spool.errors import SpoolBusy, SpoolCorrupt, SpoolRefused, SpoolTooNew

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~8 ms to import
if TYPE_CHECKING:
    from km.capture.pipeline import CapturePipeline
    from km.events import Event, SessionInfo
    from km.proxy.capture_queue import CaptureQueue
    from km.settings import Settings
    from km.spool.checkpoint import Checkpointer
    from km.spool.store import SpoolStore

IDLE_WAIT_S = 1.0  # longest sleep with nothing queued (eviction checks run at this pace)
SLICE_FRAMES = 256  # frames processed per slice before handing the GIL back
BATCH_MAX_EVENTS = 2000  # events per commit at most
BATCH_MAX_BYTES = 8 * 1024 * 1024  # bytes per commit at most (also capped by queue_max_bytes)
COMMIT_INTERVAL_S = 0.010  # a commit starts at least this long after the previous one started
EVICT_EVERY_S = 1.0  # eviction check (and is-my-file-still-there check) at most this often...
EVICT_EVERY_BYTES = 8 * 1024 * 1024  # ...or after this many payload bytes written
BACKOFF_FIRST_S = 0.1  # first retry after a failed write or open
BACKOFF_MAX_S = 5.0  # retries slow down to this
CHECKPOINTER_STOP_S = 0.5  # longest wait for the checkpoint thread when the store closes
CLOSE_MARGIN_S = 0.2  # the writer gives up this long before close()'s timeout (at most 20%)
MAX_RECOVERIES = 3  # corrupt spools moved aside in one run before capture gives up
EVENT_OVERHEAD = 200  # bytes an in-memory Event costs besides its payload
MAX_PROBLEMS = 20  # distinct problems remembered for `problems`
BUSY_SLICE_S = 0.1  # one wait for another process's write lock (see `_busy_s`)

STARTING = "starting"
CAPTURING = "capturing"
RETRYING = "retrying"  # the spool is failing; events wait, retries back off
DISABLED = "disabled"  # capture is off for this run; forwarding goes on
STOPPED = "stopped"


class SpoolWriter:
    """Writes one session's captured frames to the spool, on a thread of its own."""

    def __init__(
        self,
        settings: Settings,
        session: SessionInfo,
        queue: CaptureQueue,
        *,
        stderr_fd: int = 2,
    ) -> None:
        self._settings = settings
        self._stderr_fd = stderr_fd  # where `km: ...` problem lines go (never stdout)
        self._session = session
        self._queue = queue
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline = float("inf")  # monotonic; set by close()
        self._exit_code: int | None = None
        self._ended_ns: int | None = None
        self._status = STARTING
        self._problems: list[str] = []
        self._reported: set[str] = set()
        self._spool_path: str | None = None
        self._saved_events = 0
        self._lost_frames = 0  # frames neither stored nor counted in a stored DROPPED event
        self._session_ended = False  # the session's end is recorded in the spool
        # Owned by the writer thread from here on.
        self._store: SpoolStore | None = None
        self._checkpointer: Checkpointer | None = None
        self._pipeline: CapturePipeline | None = None
        self._pending: list[Event] = []
        self._pending_bytes = 0
        self._recorded_drops = (0, 0)  # queue drops already stored in DROPPED events
        self._retry_at = 0.0
        self._backoff = 0.0
        self._recoveries = 0
        self._batch_max_bytes = min(BATCH_MAX_BYTES, max(1, settings.queue_max_bytes))
        self._last_maintenance = 0.0
        self._bytes_since_maintenance = 0
        self._last_error: str | None = None
        self._last_error_saved = True
        self._busy_since = 0.0  # monotonic time the spool's lock was first found busy, or 0

    # -- the proxy's side --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="km-spool-writer", daemon=True)
        self._thread.start()

    def finish(self, exit_code: int | None, timeout: float) -> bool:
        """The server exited with `exit_code`: record that, flush and stop (see `close`)."""
        self._exit_code = exit_code
        self._ended_ns = time.time_ns()
        return self.close(timeout)

    def close(self, timeout: float) -> bool:
        """Flush what is queued, record the session's end and stop, waiting at most `timeout`.

        True when the session's end and everything the writer was given are in the spool (as
        events, or counted in a DROPPED event). Never raises.
        """
        if self._ended_ns is None:
            self._ended_ns = time.time_ns()
        thread = self._thread
        if thread is None:  # never started: nothing was recorded
            self._status = STOPPED
            return False
        # The thread stops trying a little before close() stops waiting, so that it still has
        # time to record the session's end and count what it could not save.
        self._deadline = time.monotonic() + timeout - min(CLOSE_MARGIN_S, timeout * 0.2)
        self._stop.set()
        self._queue.wake.set()
        thread.join(timeout)
        return not thread.is_alive() and self._session_ended and self._lost_frames == 0

    @property
    def session(self) -> SessionInfo:
        return self._session

    @property
    def accepting(self) -> bool:
        """False once the writer has stopped or given up: a producer must not wait for it."""
        thread = self._thread
        return self._status not in (DISABLED, STOPPED) and thread is not None and thread.is_alive()

    @property
    def status(self) -> str:
        """One of starting, capturing, retrying, disabled, stopped."""
        return self._status

    @property
    def problems(self) -> tuple[str, ...]:
        """The distinct problems met so far, each as reported on stderr (without `km: `)."""
        return tuple(self._problems)

    @property
    def spool_path(self) -> str | None:
        return self._spool_path

    @property
    def saved_events(self) -> int:
        """Captured events committed to the spool (DROPPED records not included)."""
        return self._saved_events

    @property
    def lost_frames(self) -> int:
        """Frames km could neither store nor record as dropped (capture off, or cut at close)."""
        return self._lost_frames

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._capture()
        except Exception as exc:  # the thread must never die: forwarding goes on without it
            self._fail(exc)
        try:
            if self._status == DISABLED:
                self._discard_until_stopped()
        finally:
            self._drop_store()
            if self._status != DISABLED:
                self._status = STOPPED

    def _capture(self) -> None:
        from km.spool.insight import analyzing_pipeline

        # Frames queued raw (by the portable relay) are analysed, then redacted, here.
        self._pipeline = analyzing_pipeline(
            self._settings, self._session.session_id, self._session.server
        )
        self._spool_path = self._settings.resolve_spool_path()
        while self._status != DISABLED:
            if self._store is None and time.monotonic() >= self._retry_at:
                self._open_store()
            self._fill_batch()
            if self._store is not None and time.monotonic() >= self._retry_at:
                self._commit()
                self._maintain()
            if self._stop.is_set() and (self._flushed() or self._past_deadline()):
                break
            self._pause()
        if self._status != DISABLED:
            self._end_session()

    def _open_store(self) -> None:
        from km.spool import checkpoint
        from km.spool.journal import fold_journals
        from km.spool.store import SpoolStore

        assert self._spool_path is not None
        try:
            self._store = SpoolStore.open(
                self._spool_path,
                self._settings.spool_max_bytes,
                recover=True,
                autocheckpoint_pages=checkpoint.BACKSTOP_PAGES,
                busy_timeout_s=self._busy_s(),
                max_age_s=self._settings.spool_max_age_s,
            )
            if self._store.moved_aside is not None:
                self._report_recovery(self._store.moved_aside)
            for note in self._store.notes:
                self._report(note, note)
            self._store.begin_session(self._session)
            with suppress(SpoolError):  # sessions earlier km processes left in side journals
                fold_journals(self._store, self._spool_path)
            self._store.evict_if_needed()
        except SpoolError as exc:
            self._on_spool_error(exc)
            self._drop_store()  # reopened (and the session begun) again on the next attempt
            return
        self._status = CAPTURING
        self._last_maintenance = time.monotonic()
        self._checkpointer = checkpoint.Checkpointer(self._spool_path)
        self._checkpointer.start()

    def _fill_batch(self) -> None:
        """Move queued frames into the pending batch, processed a slice at a time (items
        the producer already classified go in as they are)."""
        from km.events import Event

        assert self._pipeline is not None
        pipeline = self._pipeline
        pending = self._pending
        while len(pending) < BATCH_MAX_EVENTS and self._pending_bytes < self._batch_max_bytes:
            items = self._queue.drain(min(SLICE_FRAMES, BATCH_MAX_EVENTS - len(pending)))
            if not items:
                return
            raw = [
                (d, mono, wall, item) for d, mono, wall, item, _ in items if type(item) is not Event
            ]
            if not raw:  # classified by the producer (the capture process's capture thread)
                events: list[Event] = [item[3] for item in items]  # type: ignore[misc]
            elif len(raw) == len(items):
                events = pipeline.process_many(raw)  # type: ignore[arg-type]
            else:
                events = [
                    item if type(item) is Event else pipeline.process(d, mono, wall, item)  # type: ignore[arg-type]
                    for d, mono, wall, item, _ in items
                ]
            pending.extend(events)
            self._pending_bytes += sum([len(e.payload) for e in events])
            self._pending_bytes += EVENT_OVERHEAD * len(events)
            if raw:
                # Frames were processed here: let the forwarding threads have the GIL between
                # slices. Not when the producer processed them (the capture process): giving
                # the GIL up to its busy capture thread would cost a wait to get it back.
                time.sleep(0)

    def _commit(self) -> None:
        assert self._store is not None and self._pipeline is not None
        frames, nbytes = self._queue.dropped()
        new_frames = frames - self._recorded_drops[0]
        batch = self._pending
        if new_frames > 0:
            mark = self._pipeline.dropped(
                time.monotonic_ns(), time.time_ns(), new_frames, nbytes - self._recorded_drops[1]
            )
            batch = [*batch, mark]
        if not batch:
            return
        started = time.monotonic()
        try:
            if self._stop.is_set():  # closing: wait for the lock no longer than the deadline
                self._store.set_busy_timeout(self._busy_s())
            self._store.append(batch)
        except SpoolError as exc:
            self._on_spool_error(exc)
            return
        self._recorded_drops = (frames, nbytes)
        self._saved_events += len(self._pending)
        self._bytes_since_maintenance += self._pending_bytes
        if self._checkpointer is not None:
            self._checkpointer.committed()
        self._pending = []
        self._pending_bytes = 0
        self._backoff = 0.0
        self._busy_since = 0.0
        self._status = CAPTURING
        self._save_last_error()
        if not self._stop.is_set():
            rest = started + COMMIT_INTERVAL_S - time.monotonic()
            if rest > 0:
                time.sleep(rest)

    def _maintain(self) -> None:
        """Now and then: evict past the size cap; reopen if our file was moved aside."""
        store = self._store
        if store is None:
            return
        now = time.monotonic()
        due = now - self._last_maintenance >= EVICT_EVERY_S
        if not due and self._bytes_since_maintenance < EVICT_EVERY_BYTES:
            return
        self._last_maintenance = now
        self._bytes_since_maintenance = 0
        if not store.is_current():  # another km found it corrupt and moved it aside
            self._drop_store()
            return
        try:
            store.evict_if_needed()
        except SpoolError as exc:
            self._on_spool_error(exc)

    def _pause(self) -> None:
        """Wait for more work, for a retry to come due, or for close()."""
        now = time.monotonic()
        failing = self._store is None or self._retry_at > now
        if self._stop.is_set():
            if failing:
                time.sleep(max(0.0, min(self._retry_at, self._deadline) - now))
            return
        batch_full = (
            len(self._pending) >= BATCH_MAX_EVENTS or self._pending_bytes >= self._batch_max_bytes
        )
        if failing:
            wait = max(0.0, self._retry_at - now)
            if batch_full:
                self._stop.wait(wait)
            else:
                self._queue.wait(min(wait, IDLE_WAIT_S))
        elif not self._pending and not self._queue.items:
            self._queue.wait(IDLE_WAIT_S)

    def _flushed(self) -> bool:
        return (
            not self._pending
            and not self._queue.items
            and self._queue.dropped()[0] == self._recorded_drops[0]
        )

    def _past_deadline(self) -> bool:
        return time.monotonic() >= self._deadline

    def _end_session(self) -> None:
        if self._store is not None and self._flushed() and self._record_end():
            return
        if self._busy_since and self._journal_rest():  # locked by another process: keep the
            return  # rest in a side journal beside the spool
        unsaved = len(self._pending) + len(self._queue.drain())
        unsaved += self._queue.dropped()[0] - self._recorded_drops[0]
        self._lost_frames += unsaved
        self._pending = []
        if self._store is None:
            return
        try:
            self._save_last_error()
            ended_ns = self._ended_ns if self._ended_ns is not None else time.time_ns()
            self._store.end_session(self._session.session_id, ended_ns, self._exit_code)
            self._session_ended = True
        except SpoolError as exc:
            self._note(f"could not record the end of the session: {exc}")

    def _record_end(self) -> bool:
        """Everything is committed: record the session's end (True when that worked)."""
        assert self._store is not None
        try:
            self._store.set_busy_timeout(self._busy_s())
            self._save_last_error()
            ended_ns = self._ended_ns if self._ended_ns is not None else time.time_ns()
            self._store.end_session(self._session.session_id, ended_ns, self._exit_code)
        except SpoolError as exc:
            self._last_error = str(exc)
            return False
        self._session_ended = True
        return True

    def _busy_s(self) -> float:
        """One wait for another process's write lock: a short slice, so that close() is never
        kept past its deadline by a wait begun before it (the rest then goes to the side
        journal); retried at once, so a lock released later is still taken."""
        if not self._stop.is_set():
            return BUSY_SLICE_S
        return max(0.01, min(BUSY_SLICE_S, self._deadline - time.monotonic() - 0.02))

    def _journal_rest(self) -> bool:
        """The spool could not take the rest of the session (another process holds its lock):
        keep it in a side journal beside the spool, stored by the next km or `km status`.
        False when that fails too (the loss is then counted and reported)."""
        from km.spool.journal import keep_in_journal

        if self._session_ended or self._spool_path is None or self._pipeline is None:
            return False
        while self._queue.items:  # bounded: the queue is
            before = len(self._pending)
            self._fill_batch()
            if len(self._pending) == before:
                break
        events = list(self._pending)
        frames, nbytes = self._queue.dropped()
        if frames > self._recorded_drops[0]:
            events.append(
                self._pipeline.dropped(
                    time.monotonic_ns(),
                    time.time_ns(),
                    frames - self._recorded_drops[0],
                    nbytes - self._recorded_drops[1],
                )
            )
        last_error = self._redacted(self._last_error) if self._last_error else None
        kept, message = keep_in_journal(
            self._spool_path, self._session, events, self._ended_ns, self._exit_code, last_error
        )
        self._report("journal", message)
        if kept:
            self._pending, self._pending_bytes = [], 0
            self._recorded_drops = (frames, nbytes)
            self._session_ended = True
        return kept

    # -- failures ----------------------------------------------------------------------------

    def _on_spool_error(self, exc: SpoolError) -> None:
        if isinstance(exc, SpoolBusy):  # retried at once: the busy timeout already waited
            from km.spool.store import BUSY_TIMEOUT_S

            now = time.monotonic()
            self._busy_since = self._busy_since or now
            if now - self._busy_since < BUSY_TIMEOUT_S:
                return  # waits come in short slices (see `_busy_s`); only a long one is news
        self._last_error = str(exc)
        self._last_error_saved = False
        if isinstance(exc, SpoolBusy):
            self._note(str(exc))
            return
        if isinstance(exc, SpoolCorrupt):
            self._recover(exc)
            return
        if isinstance(exc, SpoolTooNew | SpoolRefused):
            self._disable(f"{exc}; capture is off for this run, forwarding continues")
            return
        self._drop_store()
        self._backoff = min(BACKOFF_MAX_S, self._backoff * 2 or BACKOFF_FIRST_S)
        self._retry_at = time.monotonic() + self._backoff
        self._status = RETRYING  # before the report: whoever reads it sees the state it names
        self._report(type(exc).__name__, f"{exc}; forwarding continues, capture will retry")

    def _recover(self, exc: SpoolError) -> None:
        from km.spool.store import recover_corrupt

        assert self._spool_path is not None
        identity = exc.identity if isinstance(exc, SpoolCorrupt) else None
        if identity is None and self._store is not None:
            identity = self._store.identity
        self._drop_store()
        self._recoveries += 1
        if self._recoveries > MAX_RECOVERIES:
            self._disable(f"{exc}; the spool keeps getting damaged, capture is off for this run")
            return
        try:
            moved = recover_corrupt(self._spool_path, identity)
        except SpoolError as move_error:
            self._disable(f"{exc}; could not move it aside ({move_error}), capture is off")
            return
        if moved is not None:
            self._report_recovery(moved)
        self._retry_at = 0.0  # open the fresh spool right away

    def _report_recovery(self, moved: str) -> None:
        self._report(
            f"corrupt:{moved}",
            f"spool {self._spool_path} was damaged; moved it to {moved} and started a fresh one",
        )

    def _drop_store(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop(CHECKPOINTER_STOP_S)
            self._checkpointer = None
        if self._store is not None:
            with suppress(Exception):
                self._store.close()
            self._store = None

    def _save_last_error(self) -> None:
        if self._last_error_saved or self._store is None or self._last_error is None:
            return
        with suppress(SpoolError):
            self._store.record_error(self._session.session_id, self._redacted(self._last_error))
            self._last_error_saved = True

    def _fail(self, exc: BaseException) -> None:
        self._disable(f"capture stopped after an internal error ({exc!r}); forwarding continues")
        store = self._store
        if store is not None:
            with suppress(Exception):
                message = self._redacted(f"internal error: {exc!r}")
                store.record_error(self._session.session_id, message)

    def _redacted(self, text: str) -> str:
        """Text km stores about the session goes through the same redactor as its events."""
        from km.redact import DEFAULT_RULES, redact_text

        try:
            rules = self._settings.redaction_rules()
        except Exception:
            rules = DEFAULT_RULES
        return redact_text(text, rules)

    def _disable(self, message: str) -> None:
        self._status = DISABLED
        self._report("disabled", message)

    def _discard_until_stopped(self) -> None:
        """Capture is off: keep emptying the queue (counting it as lost) until close()."""
        self._lost_frames += len(self._pending)
        self._pending = []
        while not self._stop.is_set():
            self._lost_frames += len(self._queue.drain())
            self._queue.wait(IDLE_WAIT_S)
        self._lost_frames += len(self._queue.drain())

    def _report(self, key: str, message: str) -> None:
        """One stderr line per kind of problem, however often it recurs."""
        self._note(message)
        if key in self._reported:
            return
        self._reported.add(key)
        with suppress(OSError):
            os.write(self._stderr_fd, f"km: {message}\n".encode(errors="replace"))

    def _note(self, message: str) -> None:
        if message not in self._problems and len(self._problems) < MAX_PROBLEMS:
            self._problems.append(message)
