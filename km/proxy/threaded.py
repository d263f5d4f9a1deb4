"""The portable relay: where `fork` and `poll` on pipes are missing (Windows), or when asked for
with `KM_RELAY=threads`.

One thread per direction reads a side and writes the other before doing anything else with the
bytes, then frames what it forwarded into the in-process capture queue; the spool writer thread
classifies, redacts and stores (it shares the GIL with forwarding: slower than the fork-based
relay in `run.py`, but exact). The main thread supervises the server: when the client closes
km's stdin, the server's stdin is closed, then after the grace period the server is terminated,
then killed; km exits with the server's status (128+N for signal N where there are signals).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from km.capture.framing import Frame, LineFramer
from km.errors import CommandNotExecutable, CommandNotFound
from km.proxy.capture_queue import CaptureQueue, Lane
from km.proxy.run import protect_stdout
from km.settings import Settings

READ_SIZE = 256 * 1024
KILL_WAIT_S = 2.0  # after the last resort (kill), longest wait for the server to go
JOIN_S = 2.0  # after the server exited, longest wait for its output to reach the client


def start_server(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start `argv` with piped stdin/stdout (stderr shared with km), found on PATH as a shell
    would (on Windows with PATHEXT: `npx` is `npx.cmd`)."""
    import shutil

    if not argv:
        raise CommandNotFound("")
    found = shutil.which(argv[0]) if os.sep not in argv[0] else argv[0]
    if found is None:
        raise CommandNotFound(argv[0])
    try:
        return subprocess.Popen(
            [found, *argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
    except FileNotFoundError:
        raise CommandNotFound(argv[0]) from None
    except PermissionError as exc:
        raise CommandNotExecutable(argv[0], exc.strerror or "permission denied") from None


Stamped = tuple[int, int, Frame]  # (monotonic ns, wall ns, frame)


class CaptureOrder:
    """Keeps captures in wire order across the two pump threads, without ever making one
    wait for the other: a server's response can only be read after the client's request was
    written, but the thread that wrote the request may not have queued its capture yet. While
    the client's thread is writing, the server's captures are held back and queued right
    after the client's (at most HOLD_MAX of them; past that they are dropped and counted)."""

    HOLD_MAX = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writing = False
        self._held: list[tuple[Lane, Stamped]] = []

    def client_writing(self) -> None:
        with self._lock:
            self._writing = True

    def client_written(self) -> None:
        with self._lock:
            self._release()

    def capture(self, lane: Lane, from_client: bool, frames: list[Stamped]) -> None:
        with self._lock:
            if from_client:
                for mono, wall, frame in frames:
                    lane.put(mono, wall, frame)
                self._release()
            elif self._writing:
                for stamped in frames:
                    if len(self._held) < self.HOLD_MAX:
                        self._held.append((lane, stamped))
                    else:
                        lane.dropped_frames += 1
                        lane.dropped_bytes += stamped[2].size
            else:
                for mono, wall, frame in frames:
                    lane.put(mono, wall, frame)

    def _release(self) -> None:
        self._writing = False
        for lane, (mono, wall, frame) in self._held:
            lane.put(mono, wall, frame)
        self._held.clear()


class ThreadedSession:
    """One MCP session through the portable relay."""

    def __init__(self, settings: Settings, argv: list[str]) -> None:
        self.settings = settings
        self.argv = argv
        self.client_closed = threading.Event()
        self.order = CaptureOrder()
        self.errors: list[str] = []

    def run(self) -> int:
        settings = self.settings
        wire_out = protect_stdout()
        server = start_server(self.argv)
        assert server.stdin is not None and server.stdout is not None
        capture = None
        if settings.capture:
            from km.proxy.capture import CaptureSession

            capture = CaptureSession(settings, self.argv, os.getpid())
        queue = capture.queue if capture is not None else None
        c2s = threading.Thread(
            target=self._pump,
            args=(0, server.stdin.fileno(), "c2s", queue, True),
            name="km-c2s",
            daemon=True,
        )
        s2c = threading.Thread(
            target=self._pump,
            args=(server.stdout.fileno(), wire_out, "s2c", queue, False),
            name="km-s2c",
            daemon=True,
        )
        self._forward_signals(server)
        c2s.start()
        s2c.start()
        code = self._supervise(server)
        s2c.join(JOIN_S)
        if capture is not None:
            capture.finish(code)
        return code

    @staticmethod
    def _forward_signals(server: subprocess.Popen[bytes]) -> None:
        """SIGINT, SIGTERM and SIGHUP to km reach the server. On Windows, Ctrl-C reaches every
        process of the console by itself: km only keeps it from killing km."""

        def forward(signum: int, _frame: object) -> None:
            if sys.platform == "win32":
                return
            try:
                server.send_signal(signum)
            except OSError:
                pass

        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None:
                signal.signal(signum, forward)

    def _pump(
        self, src: int, dst: int, direction: str, queue: CaptureQueue | None, from_client: bool
    ) -> None:
        settings = self.settings
        framer = (
            LineFramer(settings.payload_cap, settings.definitions_cap)
            if queue is not None
            else None
        )
        lane = queue.lane(direction) if queue is not None else None
        order = self.order
        try:
            while True:
                try:
                    data = os.read(src, READ_SIZE)
                except OSError:
                    data = b""
                if not data:
                    break
                if from_client:
                    order.client_writing()
                view = memoryview(data)
                while view:  # forward first: nothing else happens to the bytes before this
                    view = view[os.write(dst, view) :]
                if framer is not None and lane is not None:
                    mono, wall = time.monotonic_ns(), time.time_ns()
                    order.capture(lane, from_client, [(mono, wall, f) for f in framer.feed(data)])
                elif from_client:
                    order.client_written()
        except OSError as exc:
            self.errors.append(f"km: {direction}: {exc.strerror or exc}")
        finally:
            if framer is not None and lane is not None:
                last = framer.close()
                stamped = [] if last is None else [(time.monotonic_ns(), time.time_ns(), last)]
                order.capture(lane, from_client, stamped)
            elif from_client:
                order.client_written()
            if from_client:
                try:
                    os.close(dst)  # the server sees EOF on its stdin
                except OSError:
                    pass
                self.client_closed.set()

    def _supervise(self, server: subprocess.Popen[bytes]) -> int:
        """Wait for the server; once the client is gone, give it the grace period, then
        terminate, then kill."""
        grace = self.settings.grace_s
        escalation = (server.terminate, server.kill)
        step = 0
        deadline: float | None = None
        while True:
            try:
                if deadline is None:
                    if self.client_closed.wait(0.05):
                        deadline = time.monotonic() + grace
                    status = server.poll()
                else:
                    status = server.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                status = None
            if status is not None:
                return status if status >= 0 else 128 - status
            if deadline is not None and time.monotonic() >= deadline:
                if step < len(escalation):
                    escalation[step]()
                    step += 1
                    deadline = time.monotonic() + (grace if step < len(escalation) else KILL_WAIT_S)
                else:
                    sys.stderr.write("km: the server did not exit after being killed\n")
                    return 137


def run_threaded(settings: Settings, argv: list[str]) -> int:
    return ThreadedSession(settings, argv).run()
