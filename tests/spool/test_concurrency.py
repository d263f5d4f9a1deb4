"""Many real km processes writing one spool at once, and one of them killed mid-write."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import ProcessReaper
from tests.spool.helpers import PYTHON, REPO_ROOT, child_env, query, read_line

PROCESSES = 8
EVENTS_PER_PROCESS = 5000
BATCH = 50
CHILD_TIMEOUT_S = 120.0


def start_appender(
    reaper: ProcessReaper, path: Path, name: str, batches: int, size: int, payload: int
) -> subprocess.Popen[bytes]:
    args = [PYTHON, "-m", "tests.spool.appender", str(path), name, str(batches), str(size)]
    return reaper.popen(
        [*args, str(payload)],
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_eight_processes_append_to_one_fresh_spool(tmp_path: Path, reaper: ProcessReaper) -> None:
    path = tmp_path / "spool.db"  # not created yet: all eight race to create and migrate it
    batches = EVENTS_PER_PROCESS // BATCH
    procs = [start_appender(reaper, path, f"p{n}", batches, BATCH, 200) for n in range(PROCESSES)]
    for proc in procs:
        out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
        assert (proc.returncode, err) == (0, b"")
        assert out.split()[-1] == str(batches - 1).encode()

    total = PROCESSES * EVENTS_PER_PROCESS
    assert query(path, "SELECT count(*), count(DISTINCT id) FROM events") == [(total, total)]
    per_session = query(path, "SELECT session_id, count(*) FROM events GROUP BY 1 ORDER BY 1")
    assert per_session == [(f"p{n}", EVENTS_PER_PROCESS) for n in range(PROCESSES)]
    assert query(path, "SELECT count(*) FROM sessions") == [(PROCESSES,)]
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


def test_sigkill_mid_append_loses_no_committed_batch(tmp_path: Path, reaper: ProcessReaper) -> None:
    path = tmp_path / "spool.db"
    size = 200
    victim = start_appender(reaper, path, "victim", 1_000_000, size, 1000)
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    assert victim.stdout is not None
    victim_out = victim.stdout.fileno()
    assert (
        read_line(victim_out, deadline - time.monotonic()) == b"0\n"
    )  # the spool exists and the victim is writing
    survivor = start_appender(reaper, path, "survivor", 200, 100, 500)
    reported = 0
    while reported < 30:
        reported = int(read_line(victim_out, deadline - time.monotonic()))
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    while line := read_line(victim_out, deadline - time.monotonic()):  # lines already in the pipe
        reported = int(line)

    out, err = survivor.communicate(timeout=CHILD_TIMEOUT_S)
    assert (survivor.returncode, err) == (0, b"")
    assert out.split()[-1] == b"199"

    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    (committed,) = query(
        path,
        "SELECT count(*) FROM events WHERE id >= 'victim-' AND id < ?",
        (f"victim-{reported + 1:06d}",),
    )[0]
    assert committed == (reported + 1) * size  # every batch reported committed is there
    (victim_total,) = query(path, "SELECT count(*) FROM events WHERE session_id = 'victim'")[0]
    # At most the batch in flight when it died is also there, and then all of it or none.
    assert victim_total in (committed, committed + size)
    assert query(path, "SELECT count(*) FROM events WHERE session_id = 'survivor'") == [(20_000,)]
