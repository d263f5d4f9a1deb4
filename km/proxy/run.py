"""`km <server command>`: wire the pieces together and run one MCP session.

Order matters for start-up time: protect stdout, spawn the server, start forwarding, and only
then start the capture thread, which imports the heavy modules (orjson, sqlite3, platformdirs)
while the bytes are already flowing.
"""

from __future__ import annotations

import os
import sys
import threading

from km.capture.framing import LineFramer
from km.proxy.capture_queue import CaptureQueue
from km.proxy.relay import Pump
from km.proxy.spawn import spawn
from km.proxy.supervisor import Supervisor
from km.settings import Settings

C2S = "c2s"
S2C = "s2c"


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


class CaptureStarter:
    """Starts the spool writer on a thread of its own, so its imports never delay forwarding."""

    def __init__(self, settings: Settings, argv: list[str], child_pid: int, queue: CaptureQueue):
        self._settings = settings
        self._argv = argv
        self._child_pid = child_pid
        self._queue = queue
        self.writer: object | None = None
        self._thread = threading.Thread(target=self._start, name="km-capture-start", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _start(self) -> None:
        try:
            from km.proxy.capture import start_writer

            self.writer = start_writer(self._settings, self._argv, self._child_pid, self._queue)
        except Exception as exc:  # capture must never take the session down
            os.write(2, f"km: capture disabled: {exc}\n".encode())

    def close(self, exit_code: int, timeout: float) -> None:
        self._thread.join(timeout)
        writer = self.writer
        if writer is not None:
            writer.finish(exit_code, timeout)  # type: ignore[attr-defined]


def run_proxy(settings: Settings, argv: list[str]) -> int:
    wire_out = protect_stdout()
    child = spawn(argv)  # raises CommandNotFound / CommandNotExecutable before anything runs
    supervisor = Supervisor(child, settings.grace_s, settings.drain_s)
    supervisor.install_signal_handlers()

    queue = CaptureQueue(settings.queue_max_bytes, settings.queue_max_frames)
    capture = settings.capture
    cap = settings.payload_cap

    def stdin_eof(pump: Pump) -> None:
        supervisor.notify_client_done()

    def server_stdin_broken(pump: Pump) -> None:
        pass  # the server stopped reading: it is exiting; the reaper will tell

    def client_gone(pump: Pump) -> None:
        supervisor.notify_client_done()

    def server_stdout_eof(pump: Pump) -> None:
        pass

    to_server = Pump(
        C2S, 0, child.stdin_fd,
        LineFramer(cap) if capture else None, queue.lane(C2S) if capture else None,
        on_eof=stdin_eof, on_broken=server_stdin_broken,
    )
    to_client = Pump(
        S2C, child.stdout_fd, wire_out,
        LineFramer(cap) if capture else None, queue.lane(S2C) if capture else None,
        on_eof=server_stdout_eof, on_broken=client_gone,
    )
    to_server.start()
    to_client.start()
    supervisor.start()
    starter = CaptureStarter(settings, argv, child.pid, queue) if capture else None
    if starter is not None:
        starter.start()

    code = supervisor.run()
    to_client.join(settings.drain_s)  # the server's last words reach the client
    supervisor.clean_up_group()
    if starter is not None:
        starter.close(code, settings.flush_s)
    return code
