"""The spool keeps its size cap and gains an age cap for delivered events: sent events older
than `KM_SPOOL_MAX_AGE` (default 30 days) are deleted with the eviction, in bounded batches;
events not yet delivered are never deleted for their age."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import time
from pathlib import Path

from km.events import SENT
from km.settings import DEFAULT_SPOOL_MAX_AGE_S, Settings
from km.spool.store import AGE_BATCH, AGE_BATCHES, SpoolStore
from tests.conftest import KM
from tests.spool.helpers import make_event, make_session

DAY_NS = 86400 * 10**9


def fill(path: Path, old: int, young: int, now_ns: int, *, old_sent: bool = True) -> None:
    store = SpoolStore.open(str(path), 1 << 40)
    try:
        store.begin_session(make_session())
        events = [
            dataclasses.replace(make_event(n, prefix="old"), ts_ns=now_ns - 40 * DAY_NS + n)
            for n in range(old)
        ] + [
            dataclasses.replace(make_event(n, prefix="new"), ts_ns=now_ns - DAY_NS + n)
            for n in range(young)
        ]
        for start in range(0, len(events), 5000):
            store.append(events[start : start + 5000])
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        if old_sent:
            db.execute(f"UPDATE events SET state = {SENT:d}")
        else:
            db.execute(f"UPDATE events SET state = {SENT:d} WHERE id LIKE 'new-%'")
        db.commit()
    finally:
        db.close()


def counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT substr(id, 1, 3), count(*) FROM events WHERE session_id = 'session-1'"
            " GROUP BY 1"
        ).fetchall()
        stats = dict(db.execute("SELECT key, value FROM spool_stats").fetchall())
    finally:
        db.close()
    return {**{k: v for k, v in rows}, **{f"stat:{k}": v for k, v in stats.items()}}


def test_a_km_session_deletes_delivered_events_past_the_age_cap(
    km_env: dict[str, str], spool_path: Path
) -> None:
    fill(spool_path, old=300, young=200, now_ns=time.time_ns())
    km_env["KM_SPOOL_MAX_AGE"] = "30d"
    line = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
    result = subprocess.run([*KM, "cat"], input=line, capture_output=True, env=km_env, timeout=60)
    assert result.returncode == 0 and result.stdout == line
    found = counts(spool_path)
    assert "old" not in found and found["new"] == 200
    assert found["stat:expired_events"] == 300
    shown = subprocess.run([*KM, "status", "--json"], capture_output=True, env=km_env, timeout=60)
    assert json.loads(shown.stdout)["expired"]["events"] == 300


def test_undelivered_events_are_never_deleted_for_their_age(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    now = time.time_ns()
    fill(path, old=100, young=50, now_ns=now, old_sent=False)
    store = SpoolStore.open(str(path), 1 << 40, max_age_s=30 * 86400)
    try:
        assert store.evict_expired(now) == 0
    finally:
        store.close()
    assert counts(path)["old"] == 100


def test_deletion_is_in_bounded_batches(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    now = time.time_ns()
    per_check = AGE_BATCH * AGE_BATCHES
    fill(path, old=per_check + 500, young=10, now_ns=now)
    store = SpoolStore.open(str(path), 1 << 40, max_age_s=30 * 86400)
    try:
        assert store.evict_expired(now) == per_check  # one check does a bounded amount
        assert store.evict_expired(now) == 500  # the next one the rest
        assert store.evict_expired(now) == 0
    finally:
        store.close()
    found = counts(path)
    assert "old" not in found and found["new"] == 10
    assert found["stat:expired_events"] == per_check + 500


def test_the_default_age_cap_is_30_days() -> None:
    assert DEFAULT_SPOOL_MAX_AGE_S == 30 * 86400
    assert Settings.load({}).spool_max_age_s == 30 * 86400
