"""Damaged spools: detected by SQLite error code, moved aside, replaced by a fresh spool."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest

from km.settings import Settings
from km.spool.errors import SpoolCorrupt
from km.spool.status import read_status
from km.spool.store import SpoolStore, recover_corrupt
from km.status_cmd import run_status
from tests.spool.helpers import make_event, query

GARBAGE = b"this is not an SQLite database, just text that happens to be here\n" * 100
NO_CAP = 1 << 40


def damage(path: Path) -> None:
    """Overwrite every page of a real spool that an empty spool does not have (the events
    the test wrote) with junk: the schema stays readable."""
    empty = path.with_name("empty.db")
    make_spool(empty, 0)
    with sqlite3.connect(empty) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        schema_pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    keep = page_size * schema_pages
    data[keep:] = b"\xa5" * (len(data) - keep)
    path.write_bytes(bytes(data))


def make_spool(path: Path, events: int) -> None:
    store = SpoolStore.open(str(path), NO_CAP)
    try:
        store.append([make_event(n) for n in range(events)])
    finally:
        store.close()


def test_garbage_is_reported_as_corrupt_without_recover(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(GARBAGE)
    with pytest.raises(SpoolCorrupt, match="SQLITE_NOTADB"):
        SpoolStore.open(str(path), NO_CAP)
    assert path.read_bytes() == GARBAGE  # untouched


def test_open_with_recover_moves_garbage_aside_and_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(GARBAGE)

    store = SpoolStore.open(str(path), NO_CAP, recover=True)
    try:
        moved = store.moved_aside
        store.append([make_event(1)])
    finally:
        store.close()

    assert moved is not None
    assert re.fullmatch(re.escape(str(path)) + r"\.corrupt-\d{8}T\d{6}", moved)
    assert Path(moved).read_bytes() == GARBAGE
    assert query(path, "SELECT id FROM events") == [("ev-00000001",)]
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


def test_wal_and_shm_files_move_with_the_database(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(GARBAGE)
    (tmp_path / "spool.db-wal").write_bytes(b"old wal")
    (tmp_path / "spool.db-shm").write_bytes(b"old shm")
    moved = recover_corrupt(str(path))
    assert moved is not None
    assert sorted(os.listdir(tmp_path)) == sorted(
        Path(moved + suffix).name for suffix in ("", "-wal", "-shm")
    )
    assert Path(moved + "-wal").read_bytes() == b"old wal"
    assert Path(moved + "-shm").read_bytes() == b"old shm"


def test_a_damaged_table_is_corrupt_and_recoverable(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    make_spool(path, 300)
    damage(path)
    store = SpoolStore.open(str(path), NO_CAP)  # the header is fine: opening works
    try:
        with pytest.raises(SpoolCorrupt, match="SQLITE_CORRUPT"):
            store.append([make_event(1000)])
        identity = store.identity
    finally:
        store.close()
    moved = recover_corrupt(str(path), identity)
    assert moved is not None and not path.exists()
    make_spool(path, 1)
    assert query(path, "SELECT count(*) FROM events") == [(1,)]


def test_recovering_twice_in_one_second_keeps_both_files(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    names = []
    for text in (b"first", b"second"):
        path.write_bytes(text * 200)
        moved = recover_corrupt(str(path))
        assert moved is not None
        names.append(moved)
    assert names[0] != names[1]
    assert [Path(n).read_bytes()[:6] for n in names] == [b"firstf", b"second"]


def test_a_file_another_km_already_replaced_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(GARBAGE)
    st = os.stat(path)
    found_corrupt = (st.st_dev, st.st_ino)
    moved = recover_corrupt(str(path), found_corrupt)  # the first km moves it
    assert moved is not None
    make_spool(path, 2)  # ...and starts a fresh spool

    assert recover_corrupt(str(path), found_corrupt) is None  # a second km must not move it
    assert query(path, "SELECT count(*) FROM events") == [(2,)]
    assert recover_corrupt(str(tmp_path / "missing.db")) is None


def test_status_on_a_corrupt_spool_is_a_typed_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(GARBAGE)
    with pytest.raises(SpoolCorrupt) as info:
        read_status(str(path))
    assert info.value.path == str(path)

    settings = Settings()
    settings.spool_path = str(path)
    assert run_status(settings, as_json=True) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"km: spool {path}: damaged or not a km spool")
    assert path.read_bytes() == GARBAGE  # status never modifies or moves the file
