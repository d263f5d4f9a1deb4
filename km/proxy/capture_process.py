"""The capture process: a fork of km that turns records from the forwarding loop into spool
rows, so that parsing, correlation and SQLite never share a CPU lock (the GIL) with forwarding.

It is forked once the server is running. It holds none of the session's pipes (only its own
end of the record pipe and stderr), ignores the signals a terminal sends to the whole process
group, and ends when the record pipe reaches EOF: after the END record normally, or when km is
killed, after saving everything it received. Its imports (orjson, sqlite3, platformdirs) run on
the other core while the forwarding loop already serves the session.
"""

from __future__ import annotations

import _signal
import os
import time

from km.proxy.records import DROPS, END, FRAME, RecordDecoder
from km.settings import Settings

ROOM_WAIT_S = 0.002  # with the writer's queue full, how long to wait before looking again
PIPE_SIZE = 1 << 20  # bytes; a bigger record pipe absorbs bursts before anything is dropped
READ_SIZE = 256 * 1024  # bytes per read: each read's records are decoded into objects at once
F_SETPIPE_SZ = 1031  # Linux fcntl


def _enlarge_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass  # not Linux, or over /proc/sys/fs/pipe-max-size: the default size works too


def fork_capture(settings: Settings, argv: list[str]) -> tuple[int, int]:
    """Start the capture process; return (its pid, the fd to write records to)."""
    read_fd, write_fd = os.pipe()
    _enlarge_pipe(write_fd)
    km_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked capture process
        code = 70
        try:
            _become_capture_process(read_fd)
            code = capture_main(settings, argv, km_pid, read_fd)
        except BaseException as exc:
            os.write(2, f"km: capture process failed: {exc!r}\n".encode())
        finally:
            os._exit(code)
    os.close(read_fd)
    return pid, write_fd


def _become_capture_process(read_fd: int) -> None:
    from km.proxy.sched import batch

    batch()  # its wake-ups never preempt the forwarding process or the server
    for signum in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(signum, _signal.SIG_IGN)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    _signal.set_wakeup_fd(-1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    # Let go of every other descriptor: above all the session's pipes, so the server and the
    # client see EOF exactly when the forwarding process closes them.
    os.closerange(3, read_fd)
    os.closerange(read_fd + 1, 1 << 16)


def capture_main(settings: Settings, argv: list[str], km_pid: int, read_fd: int) -> int:
    """Receive records, classify and correlate them here, and hand the events to the spool
    writer thread: Python work on this thread overlaps SQLite's on the writer's. When the
    writer falls behind, this thread waits; the record pipe then fills, and the forwarding
    process drops (and counts) what does not fit: forwarding itself never waits."""
    from km.proxy.capture import CaptureSession
    from km.spool.insight import analyzing_pipeline

    capture = CaptureSession(settings, argv, km_pid)
    queue, writer = capture.queue, capture.writer
    lane = queue.lane("capture")
    # Secrets are redacted here, before anything reaches the disk.
    pipeline = analyzing_pipeline(settings, writer.session.session_id, writer.session.server)
    process = pipeline.process
    decoder = RecordDecoder()
    exit_code: int | None = None
    while True:
        try:
            data = os.read(read_fd, READ_SIZE)
        except OSError:
            data = b""
        if not data:
            break
        for record in decoder.feed(data):
            if record.type == FRAME and record.frame is not None:
                while not queue.has_room() and writer.accepting:
                    time.sleep(ROOM_WAIT_S)
                lane.put_event(
                    process(record.direction, record.mono_ns, record.wall_ns, record.frame)
                )
            elif record.type == DROPS:
                lane.dropped_frames += record.count  # dropped by the forwarding process
                lane.dropped_bytes += record.nbytes
                queue.wake.set()
            elif record.type == END:
                exit_code = record.count
    capture.finish(exit_code)
    return 0
