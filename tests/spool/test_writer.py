"""SpoolWriter end to end: a real CaptureQueue fed through Lanes, a real spool file."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from km.capture.framing import Frame
from km.events import C2S, DROPPED, KM, REQUEST, RESPONSE, S2C
from km.proxy.capture_queue import CaptureQueue, Lane
from km.settings import Settings
from km.spool.journal import fold_journals, pending_journals
from km.spool.store import SpoolStore
from km.spool.writer import SpoolWriter
from tests.spool.conftest import fill
from tests.spool.helpers import PYTHON, REPO_ROOT, child_env, make_session, query, read_line

LINE_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 10.0


class Pipe:
    """The writer's stderr: a real pipe the test reads `km: ...` lines from."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def line(self) -> str:
        return read_line(self.read_fd, LINE_TIMEOUT_S).decode()

    def rest(self) -> bytes:
        """Everything else written (call once the writer has stopped)."""
        os.close(self.write_fd)
        self.write_fd = -1
        chunks = []
        while chunk := os.read(self.read_fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def stderr_pipe() -> Iterator[Pipe]:
    pipe = Pipe()
    try:
        yield pipe
    finally:
        pipe.close()


def settings_for(path: Path) -> Settings:
    settings = Settings()
    settings.spool_path = str(path)
    return settings


def put(lane: Lane, body: bytes) -> bool:
    return lane.put(time.monotonic_ns(), time.time_ns(), Frame(body, len(body), False, b""))


def request(n: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"n":%d}}' % (n, n)


def response(n: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"result":{"content":[]}}' % n


def test_every_frame_reaches_the_spool(tmp_path: Path, stderr_pipe: Pipe) -> None:
    path = tmp_path / "spool.db"
    queue = CaptureQueue(64 * 1024 * 1024, 1_000_000)
    to_server, to_client = queue.lane(C2S), queue.lane(S2C)
    session = make_session("s-1", "time")
    writer = SpoolWriter(settings_for(path), session, queue, stderr_fd=stderr_pipe.write_fd)
    assert put(to_server, request(0)) and put(to_client, response(0))  # before start() too
    writer.start()
    for n in range(1, 3000):
        assert put(to_server, request(n))
        assert put(to_client, response(n))

    assert writer.finish(0, CLOSE_TIMEOUT_S) is True
    assert writer.status == "stopped"
    assert writer.saved_events == 6000
    assert writer.problems == ()
    assert stderr_pipe.rest() == b""

    rows = query(path, "SELECT direction, kind, method, rpc_id, payload, link_id, id FROM events")
    assert len(rows) == 6000
    requests = [r for r in rows if r[0] == C2S]
    responses = [r for r in rows if r[0] == S2C]
    assert [r[4] for r in requests] == [request(n) for n in range(3000)]  # in order, exact
    assert [r[4] for r in responses] == [response(n) for n in range(3000)]
    assert {r[1] for r in requests} == {REQUEST} and {r[1] for r in responses} == {RESPONSE}
    request_ids = {r[3]: r[6] for r in requests}
    assert all(r[5] == request_ids[r[3]] and r[2] == "tools/call" for r in responses)
    ended = query(path, "SELECT ended_ns IS NOT NULL, exit_code, last_error FROM sessions")
    assert ended == [(1, 0, None)]


def test_frames_the_queue_dropped_become_one_dropped_event(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    queue = CaptureQueue(max_bytes=2000, max_frames=1000)  # room for a handful of frames
    lane = queue.lane(C2S)
    accepted = [n for n in range(100) if put(lane, request(n))]
    frames, nbytes = queue.dropped()
    assert 0 < len(accepted) < 20 and frames == 100 - len(accepted)

    writer = SpoolWriter(settings_for(path), make_session("s-1"), queue)
    writer.start()
    assert writer.close(CLOSE_TIMEOUT_S) is True

    captured = query(path, "SELECT payload FROM events WHERE direction = ?", (C2S,))
    assert [r[0] for r in captured] == [request(n) for n in accepted]
    marks = query(path, "SELECT kind, payload FROM events WHERE direction = ?", (KM,))
    assert [(kind, orjson.loads(payload)) for kind, payload in marks] == [
        (DROPPED, {"frames": frames, "bytes": nbytes})
    ]
    assert nbytes == sum(len(request(n)) for n in range(100) if n not in accepted)
    assert query(path, "SELECT dropped_frames, dropped_bytes FROM sessions") == [(frames, nbytes)]


def test_an_unwritable_spool_is_reported_once_and_never_raises(
    tmp_path: Path, stderr_pipe: Pipe
) -> None:
    (tmp_path / "afile").write_bytes(b"a regular file, not a directory")
    path = tmp_path / "afile" / "spool.db"
    queue = CaptureQueue(1024 * 1024, 10_000)
    lane = queue.lane(C2S)
    writer = SpoolWriter(settings_for(path), make_session(), queue, stderr_fd=stderr_pipe.write_fd)
    writer.start()
    for n in range(50):
        assert put(lane, request(n))

    line = stderr_pipe.line()
    assert line.startswith(f"km: spool {path}: cannot create or move: ")
    assert "not a directory" in line and line.count("\n") == 1
    assert writer.status == "retrying"

    started = time.monotonic()
    assert writer.close(1.0) is False  # nothing could be saved
    assert time.monotonic() - started < 1.5
    assert writer.lost_frames == 50
    assert stderr_pipe.rest() == b""  # retried, but reported only once
    assert not path.exists()


def test_capture_resumes_when_the_spool_becomes_writable(tmp_path: Path, stderr_pipe: Pipe) -> None:
    blocker = tmp_path / "afile"
    blocker.write_bytes(b"in the way")
    path = blocker / "spool.db"
    queue = CaptureQueue(1024 * 1024, 10_000)
    lane = queue.lane(C2S)
    writer = SpoolWriter(settings_for(path), make_session(), queue, stderr_fd=stderr_pipe.write_fd)
    writer.start()
    for n in range(100):
        assert put(lane, request(n))
    assert "not a directory" in stderr_pipe.line()

    blocker.unlink()
    blocker.mkdir()
    for n in range(100, 200):
        assert put(lane, request(n))
    assert writer.finish(3, CLOSE_TIMEOUT_S) is True
    assert stderr_pipe.rest() == b""

    assert [r[0] for r in query(path, "SELECT payload FROM events")] == [
        request(n) for n in range(200)
    ]
    ((exit_code, last_error),) = query(path, "SELECT exit_code, last_error FROM sessions")
    assert exit_code == 3 and "not a directory" in last_error


def test_last_error_is_stored_redacted(tmp_path: Path, stderr_pipe: Pipe) -> None:
    """Text km stores about a session goes through the redactor (issue 12, item 2): here a
    spool path holding a token ends up in last_error."""
    token = "ghp_" + "T" * 36
    parent = tmp_path / f"GITHUB_TOKEN={token}"
    parent.mkdir()
    blocker = parent / "afile"
    blocker.write_bytes(b"in the way")
    path = blocker / "spool.db"
    queue = CaptureQueue(1024 * 1024, 10_000)
    writer = SpoolWriter(settings_for(path), make_session(), queue, stderr_fd=stderr_pipe.write_fd)
    writer.start()
    assert put(queue.lane(C2S), request(1))
    assert "not a directory" in stderr_pipe.line()
    blocker.unlink()
    blocker.mkdir()
    assert writer.finish(0, CLOSE_TIMEOUT_S) is True
    ((last_error,),) = query(path, "SELECT last_error FROM sessions")
    assert "not a directory" in last_error and token not in last_error
    assert "[REDACTED:" in last_error


def test_while_the_spool_fails_memory_is_bounded_and_drops_are_recorded_later(
    tmp_path: Path, stderr_pipe: Pipe
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_bytes(b"in the way")
    path = blocker / "spool.db"
    settings = settings_for(path)
    settings.queue_max_bytes = 20_000
    queue = CaptureQueue(settings.queue_max_bytes, 10_000)
    lane = queue.lane(C2S)
    writer = SpoolWriter(settings, make_session(), queue, stderr_fd=stderr_pipe.write_fd)
    writer.start()
    assert "not a directory" in stderr_pipe.line()  # failing from here on

    kept = [n for n in range(2000) if put(lane, request(n))]
    frames, nbytes = queue.dropped()
    assert len(kept) < 300 and frames == 2000 - len(kept)  # a bounded amount waits in memory

    blocker.unlink()
    blocker.mkdir()
    assert writer.finish(0, CLOSE_TIMEOUT_S) is True
    assert stderr_pipe.rest() == b""
    captured = query(path, "SELECT payload FROM events WHERE direction = ?", (C2S,))
    assert [r[0] for r in captured] == [request(n) for n in kept]
    marks = query(path, "SELECT payload FROM events WHERE kind = ?", (DROPPED,))
    counts = [orjson.loads(r[0]) for r in marks]
    assert sum(c["frames"] for c in counts) == frames
    assert sum(c["bytes"] for c in counts) == nbytes
    assert query(path, "SELECT dropped_frames FROM sessions") == [(frames,)]


def test_a_full_disk_is_reported_and_capture_resumes_once_freed(
    tiny_fs: Path, stderr_pipe: Pipe
) -> None:
    path = tiny_fs / "spool.db"
    filler = fill(tiny_fs)
    queue = CaptureQueue(8 * 1024 * 1024, 10_000)
    lane = queue.lane(C2S)
    writer = SpoolWriter(settings_for(path), make_session(), queue, stderr_fd=stderr_pipe.write_fd)
    writer.start()
    bodies = [request(n) + b" " * 1000 for n in range(300)]
    for body in bodies:
        assert put(lane, body)

    line = stderr_pipe.line()
    assert line.startswith(f"km: spool {path}: disk full: ")
    assert "SQLITE_FULL" in line
    filler.unlink()
    assert writer.finish(0, CLOSE_TIMEOUT_S) is True
    assert stderr_pipe.rest() == b""
    assert [r[0] for r in query(path, "SELECT payload FROM events")] == bodies


def test_a_corrupt_spool_is_moved_aside_and_capture_goes_on(
    tmp_path: Path, stderr_pipe: Pipe
) -> None:
    path = tmp_path / "spool.db"
    garbage = b"\x00garbage, not SQLite\n" * 500
    path.write_bytes(garbage)
    queue = CaptureQueue(1024 * 1024, 10_000)
    lane = queue.lane(C2S)
    writer = SpoolWriter(settings_for(path), make_session(), queue, stderr_fd=stderr_pipe.write_fd)
    writer.start()
    for n in range(20):
        assert put(lane, request(n))
    assert writer.close(CLOSE_TIMEOUT_S) is True

    line = stderr_pipe.line()
    assert line.startswith(f"km: spool {path} was damaged; moved it to {path}.corrupt-")
    moved = line.split("moved it to ")[1].split(" and started")[0]
    assert Path(moved).read_bytes() == garbage
    assert stderr_pipe.rest() == b""
    assert len(query(path, "SELECT id FROM events")) == 20


def test_an_internal_error_disables_capture_but_keeps_draining(
    tmp_path: Path, stderr_pipe: Pipe
) -> None:
    # A NUL byte in the path makes os.makedirs raise ValueError: nothing km expects.
    settings = settings_for(tmp_path / "bad\0name" / "spool.db")
    queue = CaptureQueue(1024 * 1024, 10_000)
    lane = queue.lane(C2S)
    writer = SpoolWriter(settings, make_session(), queue, stderr_fd=stderr_pipe.write_fd)
    writer.start()
    assert "capture stopped after an internal error" in stderr_pipe.line()
    assert writer.status == "disabled"
    for n in range(500):
        assert put(lane, request(n))  # the queue keeps being emptied: nothing is refused

    assert writer.close(CLOSE_TIMEOUT_S) is False
    assert writer.lost_frames == 500 and not queue.items
    assert stderr_pipe.rest() == b""


def test_close_is_bounded_while_other_processes_hold_the_spool(
    tmp_path: Path, stderr_pipe: Pipe
) -> None:
    path = tmp_path / "spool.db"
    holder = subprocess.Popen(
        [PYTHON, "-c", HOLD_WRITE_LOCK, str(path)],
        cwd=REPO_ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert read_line(holder.stdout.fileno(), LINE_TIMEOUT_S) == b"locked\n"
        queue = CaptureQueue(1024 * 1024, 10_000)
        put(queue.lane(C2S), request(1))
        writer = SpoolWriter(settings_for(path), make_session(), queue)
        writer.start()
        started = time.monotonic()
        # the spool stays locked past the deadline: the rest goes to a side journal (issue 12,
        # item 4), stored by the next km once the lock is free
        writer.close(0.5)
        assert time.monotonic() - started < 1.0
        assert writer.lost_frames == 0
        journals = pending_journals(str(path))
        assert len(journals) == 1
        holder.stdin.close()  # the other process commits and lets go
        assert holder.wait(timeout=10) == 0
        store = SpoolStore.open(str(path), 1 << 30)
        try:
            assert fold_journals(store, str(path)) == (1, 1)
        finally:
            store.close()
        assert pending_journals(str(path)) == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()


HOLD_WRITE_LOCK = """
import sys
from km.spool.store import SpoolStore
SpoolStore.open(sys.argv[1], 1 << 30).close()
import sqlite3
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("COMMIT")
conn.close()
"""


def test_importing_the_writer_loads_nothing_heavy() -> None:
    code = (
        "import sys, km.spool.writer; "
        "print(sorted(m for m in ('sqlite3', 'orjson', 'platformdirs', 'dataclasses', "
        "'km.events', 'typing') if m in sys.modules))"
    )
    out = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO_ROOT, env=child_env(), capture_output=True, timeout=30
    )
    assert out.stdout.decode().strip() == "[]", out.stderr
