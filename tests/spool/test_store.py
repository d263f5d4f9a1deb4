"""SpoolStore against real SQLite files: round trips, sessions, privacy, eviction, typed errors."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from km.capture.pipeline import CapturePipeline
from km.events import DROPPED, ERROR, KM, RESPONSE, S2C, SENT, Event
from km.spool.errors import SpoolBusy, SpoolFull, SpoolUnwritable
from km.spool.store import CACHE_KIB, EVICT_TARGET, SpoolStore
from tests.spool.conftest import fill
from tests.spool.helpers import (
    EVENT_COLUMNS,
    as_row,
    make_event,
    make_session,
    query,
    write_db,
)

NO_CAP = 1 << 40


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SpoolStore]:
    s = SpoolStore.open(str(tmp_path / "spool.db"), NO_CAP)
    try:
        yield s
    finally:
        s.close()


def stored_rows(path: str) -> list[tuple[object, ...]]:
    return query(path, f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq")


def test_every_column_reads_back_exactly(store: SpoolStore) -> None:
    not_utf8 = b'\xff\xfe{"jsonrpc":"2.0","id":7,"result":"\x80\xc3("}\x00\xed\xa0\x80'
    events = [
        Event(
            id="0190a1b2-0000-7000-8000-000000000001",
            session_id="session-1",
            server="srv",
            direction=S2C,
            ts_ns=1_795_000_000_123_456_789,
            mono_ns=987_654_321_000,
            kind=RESPONSE,
            method="tools/call",
            rpc_id='"7"',
            size=5_000_000,  # the full wire size; the payload is the truncated head
            payload=not_utf8,
            truncated=True,
            link_id="0190a1b2-0000-7000-8000-000000000000",
            latency_us=2**40,
        ),
        Event("e-2", "session-2", "other", KM, 0, 0, ERROR, None, None, 0, b""),
        make_event(3, payload=b"\x00" * 70_000),  # larger than a page: overflow pages
    ]
    store.append(events)

    rows = stored_rows(store.path)
    assert rows == [as_row(e) for e in events]
    assert isinstance(rows[0][10], bytes) and rows[0][10] == not_utf8


def test_a_retried_batch_is_stored_once(store: SpoolStore) -> None:
    batch = [make_event(n) for n in range(10)]
    store.append(batch)
    store.append(batch)  # e.g. a retry after a failure whose outcome was unclear
    store.append([*batch, make_event(10)])
    assert query(store.path, "SELECT count(*), count(DISTINCT id) FROM events") == [(11, 11)]


def test_new_directory_and_files_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "new" / "dir" / "spool.db"
        s = SpoolStore.open(str(path), NO_CAP)
        try:
            s.append([make_event(1)])  # creates -wal and -shm
            modes = {
                name: stat.S_IMODE(os.stat(path.parent / name).st_mode)
                for name in ("spool.db", "spool.db-wal", "spool.db-shm")
            }
        finally:
            s.close()
    finally:
        os.umask(old_umask)
    assert modes == {"spool.db": 0o600, "spool.db-wal": 0o600, "spool.db-shm": 0o600}
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert query(path, "PRAGMA journal_mode") == [("wal",)]


def test_sessions_record_start_capture_drops_errors_and_end(store: SpoolStore) -> None:
    info = make_session("session-1", "time")
    store.begin_session(info)
    store.begin_session(info)  # idempotent
    store.begin_session(make_session("session-2", "other"))

    pipeline = CapturePipeline("session-1", "time")
    first = make_event(1)
    later = make_event(2)
    drop_a = pipeline.dropped(5, 1_900_000_000_000_000_000, frames=3, nbytes=300)
    drop_b = pipeline.dropped(6, 1_900_000_000_000_000_001, frames=2, nbytes=20)
    store.append([first, later, drop_a])
    store.append([drop_b])
    store.record_error("session-1", "spool x: disk full")
    store.end_session("session-1", 1_800_000_000_000_000_000, 3)

    rows = query(
        store.path,
        "SELECT session_id, server, command, pid, host, started_ns, ended_ns, exit_code,"
        " km_version, dropped_frames, dropped_bytes, last_capture_ns, last_error"
        " FROM sessions ORDER BY session_id",
    )
    command = '["python","-m","mcp_server_time","--local-timezone","Europe/Paris"]'
    s2 = make_session("session-2", "other")
    assert rows[0] == (
        "session-1", "time", command, info.pid, info.host, info.started_ns,
        1_800_000_000_000_000_000, 3, info.km_version,
        5, 320,  # the DROPPED deltas summed
        later.ts_ns,  # km's own records are not captures
        "spool x: disk full",
    )  # fmt: skip
    assert rows[1][:2] == ("session-2", "other") and rows[1][6:] == (
        None, None, s2.km_version, 0, 0, None, None,
    )  # fmt: skip
    assert query(store.path, "SELECT kind FROM events WHERE direction = ?", (KM,)) == [
        (DROPPED,),
        (DROPPED,),
    ]


def fill_events(store: SpoolStore, count: int, payload_bytes: int) -> None:
    for start in range(0, count, 500):
        stop = min(count, start + 500)
        store.append([make_event(n, payload=b"x" * payload_bytes) for n in range(start, stop)])


def test_eviction_deletes_oldest_until_under_ninety_percent(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.db")
    s = SpoolStore.open(path, NO_CAP)
    try:
        fill_events(s, 2000, 1000)
        assert s.evict_if_needed() == (0, 0)  # under the cap: nothing happens
        full = s.used_bytes()
    finally:
        s.close()

    cap = full // 2
    s = SpoolStore.open(path, cap)
    try:
        events, nbytes = s.evict_if_needed()
        used = s.used_bytes()
        assert s.evict_if_needed() == (0, 0)  # now under the cap
    finally:
        s.close()

    assert used <= cap * EVICT_TARGET
    assert used >= cap * EVICT_TARGET * 0.8  # and not far under: it stops once there
    remaining = query(path, "SELECT id FROM events ORDER BY seq")
    assert len(remaining) == 2000 - events
    assert nbytes == events * 1000
    # The oldest went: what is left is the newest, in order.
    assert [r[0] for r in remaining] == [f"ev-{n:08d}" for n in range(events, 2000)]
    stats = dict(query(path, "SELECT key, value FROM spool_stats"))
    assert stats == {"evicted_events": events, "evicted_bytes": nbytes}


def test_eviction_takes_sent_events_first(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.db")
    s = SpoolStore.open(path, NO_CAP)
    try:
        fill_events(s, 2000, 1000)
        full = s.used_bytes()
    finally:
        s.close()
    with write_db(path) as conn:  # the uplink delivered events 1000-1499
        conn.execute(
            "UPDATE events SET state = ? WHERE id >= ? AND id < ?",
            (SENT, "ev-00001000", "ev-00001500"),
        )

    # Evicting ~10% (~200 events) needs none of the 1000 older pending events.
    s = SpoolStore.open(path, full - 1)
    try:
        events, _ = s.evict_if_needed()
    finally:
        s.close()
    assert 100 < events < 500
    states = query(path, "SELECT state, count(*) FROM events GROUP BY state ORDER BY state")
    assert states == [(0, 1500), (SENT, 500 - events)]
    assert query(path, "SELECT min(id) FROM events") == [("ev-00000000",)]


def test_eviction_counts_add_up_over_several_evictions(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.db")
    s = SpoolStore.open(path, 600_000)
    total = 0
    try:
        for round_ in range(4):
            s.append([make_event(n, payload=b"y" * 2000, prefix=f"r{round_}") for n in range(200)])
            total += s.evict_if_needed()[0]
    finally:
        s.close()
    (left,) = query(path, "SELECT count(*) FROM events")[0]
    assert total > 0 and left == 800 - total
    assert query(path, "SELECT value FROM spool_stats WHERE key = 'evicted_events'") == [(total,)]


def test_a_held_write_lock_gives_spool_busy_and_then_clears(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.db")
    s = SpoolStore.open(path, NO_CAP, busy_timeout_s=0.1)
    try:
        with write_db(path) as other:
            other.execute("BEGIN IMMEDIATE")  # another km mid-transaction
            with pytest.raises(SpoolBusy) as info:
                s.append([make_event(1)])
            assert info.value.path == path
            other.execute("ROLLBACK")
        s.append([make_event(1)])
    finally:
        s.close()
    assert query(path, "SELECT count(*) FROM events") == [(1,)]


def test_a_path_under_a_regular_file_is_unwritable(tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"not a directory")
    with pytest.raises(SpoolUnwritable, match="afile: not a directory"):
        SpoolStore.open(str(tmp_path / "afile" / "spool.db"), NO_CAP)


def test_a_directory_as_the_spool_path_is_unwritable(tmp_path: Path) -> None:
    with pytest.raises(SpoolUnwritable):
        SpoolStore.open(str(tmp_path), NO_CAP)


def test_a_full_disk_gives_spool_full_and_writing_resumes_once_freed(tiny_fs: Path) -> None:
    path = str(tiny_fs / "spool.db")
    s = SpoolStore.open(path, NO_CAP)
    try:
        s.append([make_event(0)])
        filler = fill(tiny_fs)
        batch = [make_event(n, payload=os.urandom(4000)) for n in range(1, 100)]
        with pytest.raises(SpoolFull, match="disk full"):
            s.append(batch)
        filler.unlink()
        s.append(batch)
    finally:
        s.close()
    assert query(path, "SELECT count(*) FROM events") == [(100,)]
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


def test_is_current_notices_the_file_was_moved(store: SpoolStore) -> None:
    assert store.is_current()
    os.rename(store.path, store.path + ".moved")
    assert not store.is_current()


def test_a_store_never_closed_warns(tmp_path: Path) -> None:
    s = SpoolStore.open(str(tmp_path / "spool.db"), NO_CAP)
    with pytest.warns(ResourceWarning, match="never closed"):
        s.__del__()  # what the garbage collector calls
    s.close()
    s.__del__()  # once closed: silent (warnings are errors here)


def test_nulls_and_stand_in_lookalikes_read_back_exactly(store: SpoolStore) -> None:
    # Rows are bound with 0 for a NULL text and '' for a NULL integer (km.spool.event_rows):
    # real values that look like those stand-ins must come back as they were, not as NULL.
    store.begin_session(make_session())
    shapes: list[dict[str, object]] = [
        {},  # every nullable column NULL
        {"method": "", "rpc_id": "0", "link_id": "", "tool": "", "status": "0"},
        {"method": "0", "tool": "0", "latency_us": 0, "tokens": 0, "risk": 0},
        {"rpc_id": "null", "latency_us": 7, "tokens": 12, "risk": 100, "status": "ok"},
    ]
    events = []
    for n in range(2 * 120 + 2 * 8 + 3):  # every statement size of `STEP_ROWS`, in turn
        e = make_event(n, payload=b"" if n % 7 == 0 else None)
        e.method = e.rpc_id = None
        for key, value in shapes[n % len(shapes)].items():
            setattr(e, key, value)
        e.truncated = n % 3 == 0
        events.append(e)
    store.append(events)
    columns = (
        "id, method, rpc_id, link_id, latency_us, tool, status, tokens, risk, truncated, payload"
    )
    rows = query(store.path, f"SELECT {columns} FROM events ORDER BY seq")
    assert rows == [
        (e.id, e.method, e.rpc_id, e.link_id, e.latency_us, e.tool, e.status, e.tokens, e.risk,
         int(e.truncated), e.payload)
        for e in events
    ]  # fmt: skip


def test_a_spool_connection_keeps_its_page_cache_to_cache_kib(store: SpoolStore) -> None:
    # SQLite's default is 2 MiB a connection; the capture process's peak RSS counts it.
    (pages,) = store._conn.execute("PRAGMA cache_size").fetchone()
    assert pages == -CACHE_KIB
