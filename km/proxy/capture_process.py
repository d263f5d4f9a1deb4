"""The capture process: a fork of km that turns records from the forwarding loop into spool
rows, so that parsing, correlation and SQLite never share a CPU lock (the GIL) with forwarding.

It is forked once the server is running. It holds none of the session's pipes (only its own
ends of the record pipe and of the go pipe, and stderr), ignores the signals a terminal sends
to the whole process group, and ends when the record pipe reaches EOF: after the END record
normally, or when km is killed, after saving everything it received. Before its imports
(orjson, sqlite3, platformdirs) it waits for the go pipe: one byte when the forwarding process
releases it (`km/proxy/startup.py`: once forwarding leaves CPU to spare), or EOF if km is gone.
So a burst sent at spawn does not share the CPU with this start-up; its records wait, in the
record pipe and the forwarding process's spill, for the capture process to read them.
"""

from __future__ import annotations

import _signal
import os
import sys
import time

from km.proxy.records import DROPS, END, RecordDecoder
from km.settings import Settings

ROOM_WAIT_S = 0.002  # with the writer's queue full, how long to wait before looking again
PIPE_SIZE = 1 << 20  # bytes; a bigger record pipe absorbs bursts before anything is dropped
READ_SIZE = 64 * 1024  # bytes per read: each read's records are decoded and processed at once
F_SETPIPE_SZ = 1031  # Linux fcntl
# The GIL's switch interval here (Python's default: 5 ms). The spool writer thread lets the GIL
# go for each SQLite statement and, while the capture thread is busy in Python, waits up to this
# long to get it back: at 5 ms a step, the writer fell behind a capture thread it could outrun.
SWITCH_INTERVAL_S = 0.001


def _enlarge_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass  # not Linux, or over /proc/sys/fs/pipe-max-size: the default size works too


def fork_capture(settings: Settings, argv: list[str]) -> tuple[int, int, int]:
    """Start the capture process; return (its pid, the fd to write records to, the go fd:
    write one byte to it, or close it, to let the capture process start)."""
    read_fd, write_fd = os.pipe()
    go_r, go_w = os.pipe()
    _enlarge_pipe(write_fd)
    km_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked capture process
        code = 70
        try:
            _become_capture_process(read_fd, go_r)
            os.read(go_r, 1)  # released, or EOF: km is gone (its records are in the pipe)
            os.close(go_r)
            code = capture_main(settings, argv, km_pid, read_fd)
        except BaseException as exc:
            os.write(2, f"km: capture process failed: {exc!r}\n".encode())
        finally:
            os._exit(code)
    os.close(read_fd)
    os.close(go_r)
    return pid, write_fd, go_w


def _become_capture_process(read_fd: int, go_fd: int) -> None:
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
    low, high = sorted((read_fd, go_fd))
    os.closerange(3, low)
    os.closerange(low + 1, high)
    os.closerange(high + 1, 1 << 16)


def capture_main(settings: Settings, argv: list[str], km_pid: int, read_fd: int) -> int:
    """Receive records, classify and correlate them here, and hand the events to the spool
    writer thread: Python work on this thread overlaps SQLite's on the writer's. When the
    writer falls behind, this thread waits; the record pipe then fills, and the forwarding
    process drops (and counts) what does not fit: forwarding itself never waits."""

    from km.proxy.capture import CaptureSession
    from km.spool.insight import analyzing_pipeline

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    capture = CaptureSession(settings, argv, km_pid)
    queue, writer = capture.queue, capture.writer
    lane = queue.lane("capture")
    # Secrets are redacted here, before anything reaches the disk; each read's payloads are
    # pre-scanned for them at once, and only those that may hold one are redacted one by one.
    pipeline = analyzing_pipeline(settings, writer.session.session_id, writer.session.server)
    process_many = pipeline.process_many
    decoder = RecordDecoder()
    exit_code: int | None = None
    while True:
        try:
            data = os.read(read_fd, READ_SIZE)
        except OSError:
            data = b""
        if not data:
            break
        frames, others = decoder.feed_frames(data)
        if frames:
            events = process_many(frames)
            nbytes = sum([len(e.payload) for e in events])
            while not queue.has_room_for(len(events), nbytes) and writer.accepting:
                time.sleep(ROOM_WAIT_S)
            lane.put_events(events)
        for record in others:
            if record.type == DROPS:
                lane.dropped_frames += record.count  # dropped by the forwarding process
                lane.dropped_bytes += record.nbytes
                queue.wake.set()
            elif record.type == END:
                exit_code = record.count
    capture.finish(exit_code)
    return 0
