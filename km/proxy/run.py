"""`km <server command>`: wire the pieces together and run one MCP session.

Order matters for start-up time: protect stdout, spawn the server, fork the capture process,
then forward. The forwarding process imports almost nothing. The capture process waits to be
released before it loads the heavy modules (`km/proxy/startup.py`: once forwarding leaves
CPU to spare), so a burst sent at spawn is forwarded without that start-up on the CPU, and its
captures wait in the start-up spill (`SPILL_FACTOR` x `queue_max_bytes`) instead of dropping.
"""

from __future__ import annotations

import _signal
import os
import sys
import time

from km.capture.framing import LineFramer
from km.proxy.idle_timer import IdleTimer
from km.proxy.loop import (
    Capture,
    Direction,
    Relay,
    enlarge_pipe,
    is_pipe_or_socket,
    set_nonblocking,
)
from km.proxy.records import encode_end
from km.proxy.spawn import spawn
from km.proxy.startup import END_SPILL, RELEASE, WINDOW_MS, StartUp
from km.proxy.supervisor import Supervisor, exit_code_of
from km.settings import Settings

FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
CAPTURE_FLUSH_BYTES = 64 * 1024  # records gathered before they are written even when busy
# Records wait for the session to go quiet: they are written at the first tick of the idle timer
# (this period) after a whole period without a message, 10-20 ms into a pause; where there is no
# timerfd, after a `poll` timeout this long.
CAPTURE_IDLE_MS = 10
EXIT_WAIT_S = 1.0  # at exit, longest wait for the capture process; it then finishes on its own
SPILL_FACTOR = 16  # start-up spill: this x queue_max_bytes (64 MiB by default) of records,
# while fewer than queue_max_frames frames wait


def protect_stdout() -> int:
    """Stdout is the wire: keep a private copy of fd 1 for forwarding and point fd 1 (and
    `sys.stdout`) at stderr, so no stray print from km or a library can corrupt the stream."""
    wire = os.dup(1)
    try:
        os.dup2(2, 1)
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    sys.stdout = sys.stderr
    return wire


class Session:
    """The forwarding process's state for one run."""

    def __init__(self, settings: Settings, argv: list[str]) -> None:
        self.settings = settings
        self.argv = argv
        self.signals: list[int] = []
        self.wake_r, self.wake_w = os.pipe()
        set_nonblocking(self.wake_r)
        set_nonblocking(self.wake_w)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)

    def install_signal_handlers(self) -> None:
        # The C-level handler writes to the wake-up pipe, so `poll` returns at once.
        _signal.set_wakeup_fd(self.wake_w)
        for signum in (*FORWARDED_SIGNALS, _signal.SIGCHLD):
            _signal.signal(signum, self._on_signal)

    def run(self) -> int:
        settings = self.settings
        self.install_signal_handlers()  # before spawning: a SIGCHLD must not be missed
        wire_out = protect_stdout()
        child = spawn(self.argv)
        supervisor = Supervisor(child.pid, settings.grace_s)
        capture: Capture | None = None
        capture_pid = 0
        if settings.capture:
            from km.proxy.capture_process import fork_capture

            capture_pid, capture_fd, go_fd = fork_capture(settings, self.argv)
            set_nonblocking(capture_fd)
            queue_bytes = settings.queue_max_bytes
            spill_bytes = SPILL_FACTOR * queue_bytes
            capture = Capture(
                capture_fd, queue_bytes, spill_bytes, settings.queue_max_frames, go_fd
            )
        restore: list[tuple[int, int]] = []
        for fd in (child.stdin_fd, child.stdout_fd):
            set_nonblocking(fd)
        for fd in (child.stdin_fd, child.stdout_fd, 0, wire_out):
            enlarge_pipe(fd)
        if is_pipe_or_socket(wire_out):
            restore.append((wire_out, set_nonblocking(wire_out)))
        cap, dcap = settings.payload_cap, settings.definitions_cap
        relay = Relay(
            (
                # Definitions (initialize and list results) only come from the server: client
                # frames past the payload cap are cut there without searching their heads.
                Direction(0, "c2s", 0, child.stdin_fd, LineFramer(cap) if capture else None),
                Direction(
                    1, "s2c", child.stdout_fd, wire_out, LineFramer(cap, dcap) if capture else None
                ),
            ),
            capture,
        )

        def client_done() -> None:
            if supervisor.client_done(time.monotonic()):
                relay.close_server_stdin()

        relay.on_client_done.append(client_done)
        relay.watch_extra(self.wake_r)
        try:
            code = self._loop(relay, supervisor)
        finally:
            self._restore_flags(restore)
        supervisor.clean_up_group()
        if capture is not None:
            self._finish_capture(capture, capture_pid, code)
        return code

    def _loop(self, relay: Relay, supervisor: Supervisor) -> int:
        """Serve ready fds until the server has exited and its output is through. Captured
        records are written to the capture process once the loop has been idle for a tick of
        the idle timer (or, without one, for a `poll` timeout of `CAPTURE_IDLE_MS`), or once
        `CAPTURE_FLUSH_BYTES` have gathered: never between a read and its write."""
        timer = _LazyTimer(relay)
        try:
            return self._serve(relay, supervisor, timer)
        finally:
            timer.close()

    def _serve(self, relay: Relay, supervisor: Supervisor, lazy: _LazyTimer) -> int:
        poll = relay.poll.poll
        handle = relay.handle
        wake_r = self.wake_r
        timer: IdleTimer | None = None
        timer_fd = -1
        capture = relay.capture
        monotonic = time.monotonic
        drain_deadline: float | None = None
        startup = None
        blocked = 0.0  # seconds the last `poll` waited (measured during the start-up only)
        moved = False  # a message came since the idle timer's last tick
        deferred = relay.deferred_reads  # reads waiting to be framed (a list, not a call)
        if capture is not None and not capture.released:
            spill = capture.limit - capture.max_bytes
            startup = StartUp(monotonic(), capture.max_bytes, spill, capture.spill_frames)
        supervisor.poll_exit()
        while True:
            pending_capture = capture is not None and (len(capture.buf) > 0 or len(deferred) > 0)
            idle_ms = -1
            if pending_capture:
                if timer is None and lazy.available:
                    timer = lazy.get()  # made once records first wait: after the first write
                    timer_fd = timer.fd if timer is not None else -1
                if timer is not None and not timer.armed:
                    if timer.arm():
                        moved = False
                    else:  # refused by the kernel: wait with `poll` timeouts from now on
                        timer, timer_fd, lazy.available = None, -1, False
                if timer is None:
                    idle_ms = CAPTURE_IDLE_MS
            if supervisor.status is None and supervisor.deadline is None:
                timeout_ms = idle_ms
            else:
                now = monotonic()
                if supervisor.status is not None:
                    if drain_deadline is None:
                        drain_deadline = now + self.settings.drain_s
                    if relay.server_output_done or now >= drain_deadline:
                        break
                deadline = min(d for d in (supervisor.deadline, drain_deadline) if d is not None)
                timeout_ms = max(0, int((deadline - now) * 1000) + 1)
                if idle_ms >= 0:
                    timeout_ms = min(timeout_ms, idle_ms)
            if startup is None:
                events = poll(timeout_ms)
            else:
                if startup.held and not 0 <= timeout_ms <= WINDOW_MS:
                    timeout_ms = WINDOW_MS
                polled_at = monotonic()
                events = poll(timeout_ms)
                blocked = monotonic() - polled_at
            idle = not events
            for fd, mask in events:
                if fd == timer_fd:
                    assert timer is not None
                    timer.consume()
                    idle, moved = not moved, False
                elif fd == wake_r:
                    self._on_wake(supervisor)
                else:
                    handle(fd, mask)
                    moved = True
            if startup is not None and capture is not None:
                action = startup.step(monotonic(), blocked, len(capture.buf), capture.frames)
                if action == RELEASE:
                    capture.release()
                elif action == END_SPILL:
                    capture.end_spill()
                    startup = None
            if (
                capture is not None
                and (capture.buf or deferred)
                and (idle or len(capture.buf) >= CAPTURE_FLUSH_BYTES)
            ):
                relay.flush_capture()
                if timer is not None and not capture.buf:
                    timer.disarm()
            if supervisor.deadline is not None:
                supervisor.tick(monotonic())
        relay.flush_capture()
        assert supervisor.status is not None
        return exit_code_of(supervisor.status)

    def _on_wake(self, supervisor: Supervisor) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        signals, self.signals = self.signals, []
        now = time.monotonic()
        for signum in signals:
            if signum != _signal.SIGCHLD:
                supervisor.got_signal(signum, now)
        supervisor.poll_exit()

    @staticmethod
    def _restore_flags(restore: list[tuple[int, int]]) -> None:
        import fcntl

        for fd, flags in restore:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)
            except OSError:
                pass

    def _finish_capture(self, capture: Capture, capture_pid: int, code: int) -> None:
        """Hand the rest of the records and the END record to the capture process (at most
        `flush_s`), then wait at most EXIT_WAIT_S for it to save them. Past that, km exits
        with the server's status and the capture process finishes on its own: under a heavy
        backlog the client is not held up for the spool."""
        import select

        capture.release()
        capture.flush_drops(time.monotonic_ns(), time.time_ns())
        capture.buf += encode_end(time.monotonic_ns(), time.time_ns(), code)
        deadline = time.monotonic() + self.settings.flush_s
        while capture.fd >= 0 and capture.buf and time.monotonic() < deadline:
            if not capture.flush():
                select.select([], [capture.fd], [], max(0.0, deadline - time.monotonic()))
        if capture.buf:
            lost = capture.frames
            capture.total_dropped += lost
            os.write(
                2,
                f"km: the capture process did not keep up; the last {lost} messages were not "
                "captured\n".encode(),
            )
        if capture.fd >= 0:
            os.close(capture.fd)
        if capture.total_dropped:
            os.write(
                2,
                f"km: {capture.total_dropped} messages not captured (capture fell behind)\n"
                .encode(),
            )
        deadline = time.monotonic() + EXIT_WAIT_S
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(capture_pid, os.WNOHANG)
            if pid:
                return
            time.sleep(0.002)


def run_proxy(settings: Settings, argv: list[str]) -> int:
    if settings.relay == "threads" or not hasattr(os, "fork"):
        from km.proxy.threaded import run_threaded

        return run_threaded(settings, argv)
    return Session(settings, argv).run()


class _LazyTimer:
    """The forwarding loop's idle timer, made when records first wait, so after the first
    message is written: nothing of it comes before the first byte."""

    __slots__ = ("available", "relay", "timer")

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.timer: IdleTimer | None = None
        self.available = relay.capture is not None  # until making one fails

    def get(self) -> IdleTimer | None:
        if self.timer is None and self.available:
            self.timer = IdleTimer.create(CAPTURE_IDLE_MS)
            if self.timer is None:
                self.available = False
            else:
                self.relay.watch_extra(self.timer.fd)
        return self.timer

    def close(self) -> None:
        if self.timer is not None:
            self.timer.close()
