"""The background uplink of a km capture process: one daemon thread, started without delay and
without heavy imports, that never raises into its caller.

Only one km process per spool delivers at a time: the thread first takes the spool's uplink
lock (`flock` on `<spool>.uplink.lock`). With 5-8 km processes running, one of them sends
everything (an uplink sends thousands of events a second; MCP traffic is far less) while the
others wait on the lock, having imported nothing more: asyncio and the HTTP client cost each
process ~11 MB, and each uplink would poll the spool. When the delivering km process exits,
its lock goes with it and a waiting one takes over within `LEADER_POLL_S`. `km sync` does not
take the lock; the leases keep every event to one sender at a time anyway.

With no API URL and key configured, the thread ends at once, having done nothing.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
import time

from km.priority import lower_this_thread

TYPE_CHECKING = False  # not `from typing import ...`: keep this module's imports minimal
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from km.settings import Settings
    from km.uplink.run import UplinkConfig

LEADER_POLL_S = 2.0  # a waiting km process tries the uplink lock this often (one syscall)
STOP_JOIN_S = 2.0  # default wait for the thread in `UplinkHandle.stop`
LOCK_SUFFIX = ".uplink.lock"


def reread_config(settings: Settings) -> Settings:
    """A copy of `settings` with the config file read again (environment and flags still win).
    The original is left alone: other threads of the process read it."""
    fresh = copy.copy(settings)
    fresh._explicit = set(settings._explicit)  # the copy must not share the set it updates
    fresh.load_config_file()
    return fresh


class UplinkHandle:
    """The background uplink of one km process: `stop(timeout)` ends it."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Set once `stop(drain_s=...)` has no reason to wait for the loop: it is attached, the
        # thread has ended, or another km process holds the uplink lock (its uplink delivers).
        self._settled = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: Callable[[], None] | None = None
        self._drain: Callable[[], None] | None = None
        self.active = False  # this process holds the uplink lock and delivers
        self.uplink: object | None = None  # the running `Uplink`, for tests and diagnostics
        self.error: str | None = None  # why the thread ended early, if it did

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = STOP_JOIN_S, *, drain_s: float = 0.0) -> bool:
        """Stop the uplink and wait at most `timeout` seconds for its thread; True when it has
        ended. With `drain_s`, it first gets up to that long (within `timeout`) to deliver what
        is deliverable, without waiting on a backoff or an open circuit. Rows it still holds go
        back to pending. Never raises."""
        try:
            deadline = time.monotonic() + max(0.0, timeout)
            drain_until = time.monotonic() + max(0.0, min(drain_s, timeout))
            if drain_s > 0 and self.running:
                # A short session can end while the uplink still imports (asyncio: a second
                # on a busy machine): its events are delivered all the same.
                self._settled.wait(max(0.0, drain_until - time.monotonic()))
            with self._lock:
                loop, drain = self._loop, self._drain
            if drain_s > 0 and loop is not None and drain is not None:
                try:
                    loop.call_soon_threadsafe(drain)
                except RuntimeError:
                    pass  # the loop already closed
                thread = self._thread
                if thread is not None:
                    thread.join(max(0.0, drain_until - time.monotonic()))
            with self._lock:
                self._stopping.set()
                loop, wake = self._loop, self._wake
            if loop is not None and wake is not None:
                try:
                    loop.call_soon_threadsafe(wake)
                except RuntimeError:
                    pass  # the loop already closed
            thread = self._thread
            if thread is None:
                return True
            thread.join(max(0.0, deadline - time.monotonic()))
            return not thread.is_alive()
        except BaseException:
            return False

    def _attach(
        self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None], drain: Callable[[], None]
    ) -> bool:
        """Called on the uplink's thread once its loop runs; False when stop() came first."""
        with self._lock:
            if self._stopping.is_set():
                return False
            self._loop, self._wake, self._drain = loop, wake, drain
            self._settled.set()
            return True


def start_background_uplink(
    settings: Settings, spool_path: str, config: UplinkConfig | None = None
) -> UplinkHandle:
    """Start delivering `spool_path`'s events on a daemon thread with its own event loop
    (asyncio's, not uvloop: see `km.uplink.run.run_in_thread`). Returns at once and never
    raises."""
    handle = UplinkHandle()
    try:
        thread = threading.Thread(
            target=_main,
            args=(handle, settings, spool_path, config),
            name="km-uplink",
            daemon=True,
        )
        handle._thread = thread
        thread.start()
    except BaseException as exc:
        handle._thread = None
        handle.error = f"cannot start the uplink thread: {exc!r}"
    return handle


def _main(
    handle: UplinkHandle, settings: Settings, spool_path: str, config: UplinkConfig | None
) -> None:
    try:
        _deliver(handle, settings, spool_path, config)
    finally:
        handle._settled.set()


def _deliver(
    handle: UplinkHandle, settings: Settings, spool_path: str, config: UplinkConfig | None
) -> None:
    try:
        own = reread_config(settings)
        if not (own.api_url and own.api_key):
            return  # no API configured: nothing to do, nothing imported
        lock_fd = _become_leader(handle, spool_path)
        if lock_fd is None:
            return  # stopped while waiting
        try:
            handle.active = True
            lower_this_thread()  # delivery can wait a few ms; the session's messages cannot
            from km.uplink.run import Uplink, run_in_thread

            uplink = Uplink(own, spool_path, config)
            handle.uplink = uplink
            run_in_thread(handle, uplink)
        finally:
            handle.active = False
            os.close(lock_fd)  # the next km process takes over
    except BaseException as exc:
        handle.error = repr(exc)
        try:
            key = settings.api_key
            text = handle.error.replace(key, "<key>") if key else handle.error
            sys.stderr.write(f"km: uplink stopped: {text}\n")
        except BaseException:
            pass


def _become_leader(handle: UplinkHandle, spool_path: str) -> int | None:
    """Wait for the spool's uplink lock; its fd, or None when stopped first."""
    path = spool_path + LOCK_SUFFIX
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    while not handle._stopping.is_set():
        try:
            fd = os.open(path, flags, 0o600)
        except OSError:
            fd = -1  # no spool directory yet: the spool writer is about to create it
        if fd >= 0:
            if _try_lock(fd):
                return fd
            os.close(fd)
            handle._settled.set()  # another km process delivers; nothing to wait for here
        handle._stopping.wait(LEADER_POLL_S)
    return None


def _try_lock(fd: int) -> bool:
    """An exclusive lock on the open file, without waiting; it goes when the fd is closed
    (or the process dies)."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
