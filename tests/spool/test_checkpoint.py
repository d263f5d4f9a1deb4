"""WAL checkpoints off the capture path: the writer's connection only checkpoints past the
backstop, the low-priority checkpointer copies the WAL into the database once commits pause."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from km.priority import LOWEST_NICE
from km.spool import checkpoint
from km.spool.checkpoint import MAX_DEFER_S, QUIET_S, Checkpointer, checkpoint_due
from km.spool.store import SpoolStore
from tests.spool.helpers import make_event, make_session

NO_CAP = 1 << 40
WAIT_S = 10.0  # for the checkpointer thread to get to it, on a loaded machine


def test_due_only_once_commits_pause_or_after_the_longest_deferral() -> None:
    assert not checkpoint_due(now=10.0, last_commit=10.0 - QUIET_S / 2, last_checkpoint=9.0)
    assert checkpoint_due(now=10.0, last_commit=10.0 - QUIET_S, last_checkpoint=9.0)
    # Commits that never pause still get a checkpoint every MAX_DEFER_S.
    assert checkpoint_due(now=100.0, last_commit=100.0, last_checkpoint=100.0 - MAX_DEFER_S)
    assert not checkpoint_due(now=100.0, last_commit=100.0, last_checkpoint=99.0)


def test_the_writer_connection_checkpoints_only_past_the_backstop(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.db")
    store = SpoolStore.open(path, NO_CAP, autocheckpoint_pages=checkpoint.BACKSTOP_PAGES)
    try:
        (pages,) = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert pages == checkpoint.BACKSTOP_PAGES
        store.begin_session(make_session())
        # ~6 MB: six times SQLite's default 1000-page automatic checkpoint, under the backstop.
        for start in range(0, 96, 8):
            store.append([make_event(n, payload=b"y" * 65536) for n in range(start, start + 8)])
        db_size = os.path.getsize(path)
        assert os.path.getsize(path + "-wal") > 6_000_000
        assert db_size < 1_000_000  # the pages are still only in the WAL
    finally:
        store.close()


def test_the_checkpointer_copies_the_wal_once_commits_pause(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.db")
    store = SpoolStore.open(path, NO_CAP, autocheckpoint_pages=checkpoint.BACKSTOP_PAGES)
    checkpointer = Checkpointer(path)
    checkpointer.start()
    try:
        store.begin_session(make_session())
        store.append([make_event(n, payload=b"z" * 65536) for n in range(32)])
        before = os.path.getsize(path)
        assert before < 1_000_000  # the payloads are only in the WAL
        checkpointer.committed()
        deadline = time.monotonic() + WAIT_S
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checkpointer.checkpoints == 1
        assert os.path.getsize(path) > before + 32 * 65536  # the payloads are in the database
        # Nothing committed since: no further checkpoint.
        time.sleep(QUIET_S * 3)
        assert checkpointer.checkpoints == 1
    finally:
        checkpointer.stop(WAIT_S)
        store.close()
    assert checkpointer._thread is not None and not checkpointer._thread.is_alive()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_the_checkpointer_thread_runs_at_the_lowest_priority(tmp_path: Path) -> None:
    def nice_of(tid: int) -> int:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[16])  # field 19: nice

    checkpointer = Checkpointer(str(tmp_path / "spool.db"))
    checkpointer.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while checkpointer.native_id is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpointer.native_id is not None
        tid = checkpointer.native_id
        while nice_of(tid) != LOWEST_NICE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert nice_of(tid) == LOWEST_NICE
        assert nice_of(os.getpid()) != LOWEST_NICE  # the rest of the process keeps its own
    finally:
        checkpointer.stop(WAIT_S)
