"""The child's lifecycle, run on km's main thread, following the MCP stdio transport.

- The client closes km's stdin (or stops reading km's stdout): close the server's stdin, wait
  `grace_s`, SIGTERM the server's process group, wait `grace_s`, SIGKILL it.
- SIGINT and SIGHUP sent to km are forwarded to the server's process group; SIGTERM too, and
  then the same bounded escalation as above, so km never exits leaving the server behind.
- The server exits: wait (at most `drain_s`) for its stdout to reach EOF so its last words are
  forwarded, then return its exit status (128+N when it died of signal N).
Every wait is bounded. Signal handlers only record and forward; decisions happen in `run`.
"""

from __future__ import annotations

import _signal
import os
import threading
import time

from km.proxy.spawn import Child

FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
KILL_WAIT_S = 5.0  # after SIGKILL, longest wait for the kernel to reap the child
POLL_S = 0.5  # the longest the main thread sleeps without looking at the state again

# Phases of a session, in the order they can only advance.
RUNNING = 0
CLOSING = 1  # server's stdin closed; waiting for it to exit by itself
TERMINATING = 2  # SIGTERM sent
KILLING = 3  # SIGKILL sent


def exit_code_of(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Supervisor:
    """Owns the child process; the pumps and signal handlers report to it through `notify_*`."""

    def __init__(self, child: Child, grace_s: float, drain_s: float) -> None:
        self.child = child
        self.grace_s = grace_s
        self.drain_s = drain_s
        self._cond = threading.Condition()
        self._client_done = False  # stdin EOF or stdout broken
        self._status: int | None = None
        self._signals: list[int] = []
        self._phase = RUNNING
        self._deadline: float | None = None
        self._reaper = threading.Thread(target=self._reap, name="km-reaper", daemon=True)

    # --- reports from other threads and from signal handlers -------------------------------
    def notify_client_done(self) -> None:
        with self._cond:
            self._client_done = True
            self._cond.notify()

    def on_signal(self, signum: int, _frame: object) -> None:
        """Signal handler (main thread): forward at once, decide in `run`."""
        self._killpg(signum)
        self._signals.append(signum)

    def _reap(self) -> None:
        _, status = os.waitpid(self.child.pid, 0)
        with self._cond:
            self._status = status
            self._cond.notify()

    # --- the main thread --------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        for signum in FORWARDED_SIGNALS:
            _signal.signal(signum, self.on_signal)

    def start(self) -> None:
        self._reaper.start()

    def run(self) -> int:
        """Block until the child has exited; return km's exit code."""
        while True:
            with self._cond:
                if self._status is None:
                    self._cond.wait(self._timeout())
                status = self._status
                client_done = self._client_done
            if status is not None:
                break
            self._advance(client_done)
        return exit_code_of(status)

    def _timeout(self) -> float:
        if self._deadline is None:
            return POLL_S
        return max(0.0, min(POLL_S, self._deadline - time.monotonic()))

    def _advance(self, client_done: bool) -> None:
        now = time.monotonic()
        while self._signals:
            if self._signals.pop(0) == _signal.SIGTERM and self._phase < TERMINATING:
                self._phase = TERMINATING  # already forwarded by the handler
                self._deadline = now + self.grace_s
        if client_done and self._phase == RUNNING:
            self.close_child_stdin()
            self._phase = CLOSING
            self._deadline = now + self.grace_s
        if self._deadline is None or now < self._deadline:
            return
        if self._phase == CLOSING:
            self._killpg(_signal.SIGTERM)
            self._phase = TERMINATING
            self._deadline = now + self.grace_s
        elif self._phase == TERMINATING:
            self._killpg(_signal.SIGKILL)
            self._phase = KILLING
            self._deadline = now + KILL_WAIT_S
        elif self._phase == KILLING:
            self._deadline = None  # nothing more to send; the reaper will report

    def close_child_stdin(self) -> None:
        """Give the server EOF on stdin without racing the pump that writes to it: the pipe's
        write end is atomically replaced by /dev/null (closing the pipe), so a late write from
        the pump goes nowhere instead of to a reused file descriptor."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.child.stdin_fd)
            os.close(devnull)
        except OSError:
            pass

    def _killpg(self, signum: int) -> None:
        try:
            os.killpg(self.child.pid, signum)
        except (ProcessLookupError, PermissionError):
            try:  # the group may be gone while the leader is a zombie
                os.kill(self.child.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def clean_up_group(self) -> None:
        """After the leader exited: stragglers left in its process group get SIGTERM, then
        SIGKILL after a bounded wait, so no orphan outlives km."""
        try:
            os.killpg(self.child.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        self._killpg(_signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(self.child.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.01)
        self._killpg(_signal.SIGKILL)
