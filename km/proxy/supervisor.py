"""The server's lifecycle as a state machine, following the MCP stdio transport.

- The client closes km's stdin (or stops reading km's stdout): the server's stdin is closed,
  then after `grace_s` SIGTERM goes to the server's process group, then after `grace_s` SIGKILL.
- SIGINT and SIGHUP sent to km are forwarded to the server's process group; SIGTERM too, and
  then the same bounded escalation, so km never exits leaving the server behind.
No threads and no sleeping here: the forwarding loop calls these methods and waits, in `poll`,
at most until `deadline`.
"""

from __future__ import annotations

import _signal
import os
import time

RUNNING = 0
CLOSING = 1  # server's stdin closed; waiting for it to exit by itself
TERMINATING = 2  # SIGTERM sent
KILLING = 3  # SIGKILL sent
KILL_WAIT_S = 5.0  # after SIGKILL, how long before we stop waiting for the kernel


def exit_code_of(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to the process group (the server and everything it started)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        try:  # the leader may be a zombie whose group is empty
            os.kill(pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class Supervisor:
    def __init__(self, pid: int, grace_s: float) -> None:
        self.pid = pid
        self.grace_s = grace_s
        self.phase = RUNNING
        self.deadline: float | None = None
        self.status: int | None = None

    def client_done(self, now: float) -> bool:
        """The client went away. True when the server's stdin should be closed now."""
        if self.phase != RUNNING:
            return False
        self.phase = CLOSING
        self.deadline = now + self.grace_s
        return True

    def got_signal(self, signum: int, now: float) -> None:
        signal_group(self.pid, signum)
        if signum == _signal.SIGTERM and self.phase < TERMINATING:
            self.phase = TERMINATING
            self.deadline = now + self.grace_s

    def tick(self, now: float) -> None:
        """Escalate when a deadline has passed."""
        if self.deadline is None or now < self.deadline or self.status is not None:
            return
        if self.phase == CLOSING:
            signal_group(self.pid, _signal.SIGTERM)
            self.phase = TERMINATING
            self.deadline = now + self.grace_s
        elif self.phase == TERMINATING:
            signal_group(self.pid, _signal.SIGKILL)
            self.phase = KILLING
            self.deadline = now + KILL_WAIT_S
        else:
            self.deadline = None

    def poll_exit(self) -> bool:
        """Reap the server if it has exited (called on SIGCHLD); True once it has."""
        if self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0
            if pid == self.pid:
                self.status = status
        return self.status is not None

    def clean_up_group(self) -> None:
        """After the leader exited: stragglers in its process group get SIGTERM, then SIGKILL
        after a bounded wait, so no orphan outlives km."""
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        signal_group(self.pid, _signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.01)
        signal_group(self.pid, _signal.SIGKILL)
