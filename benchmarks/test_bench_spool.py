"""Micro-benchmark of `SpoolStore.append`: 500 events of 200 bytes per transaction.

The baseline in the same group is the same rows inserted with plain `sqlite3.executemany` into a
bare table under the same pragmas (WAL, synchronous=NORMAL): what the spool's schema, indexes and
bookkeeping cost on top of SQLite itself. Fresh event ids every round (the spool skips ids it has).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from km.events import C2S, NOTIFICATION, Event, SessionInfo

if TYPE_CHECKING:
    from km.spool.store import SpoolStore

store_mod = pytest.importorskip("km.spool.store")  # written in parallel; skip until it exists

BATCH = 500
PAYLOAD = (
    b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"' + b"x" * 129 + b'"}}'
)
assert len(PAYLOAD) == 200
ROUNDS = 100
MAX_BYTES = 1024 * 1024 * 1024
SESSION = "bench-session"
_ids = itertools.count()


def _batch() -> list[Event]:
    return [
        Event(
            id=f"ev-{next(_ids)}",
            session_id=SESSION,
            server="bench",
            direction=C2S,
            ts_ns=1_700_000_000_000_000_000 + i,
            mono_ns=i,
            kind=NOTIFICATION,
            method="notifications/message",
            rpc_id=None,
            size=len(PAYLOAD),
            payload=PAYLOAD,
        )
        for i in range(BATCH)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SpoolStore]:
    s = store_mod.SpoolStore.open(str(tmp_path / "spool.db"), MAX_BYTES)
    s.begin_session(SessionInfo(SESSION, "bench", ("bench",), 1, "host", 1, "bench"))
    yield s
    s.close()


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(str(tmp_path / "bare.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE events (id TEXT, ts_ns INTEGER, payload BLOB)")
    yield conn
    conn.close()


def _bare_append(conn: sqlite3.Connection) -> Callable[[list[Event]], None]:
    def append(events: list[Event]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?)", [(e.id, e.ts_ns, e.payload) for e in events]
        )
        conn.execute("COMMIT")

    return append


def _run(benchmark: BenchmarkFixture, append: Callable[[list[Event]], None]) -> None:
    benchmark.group = f"spool: append {BATCH} x {len(PAYLOAD)} B events per transaction"
    # pedantic: a fresh batch (new ids) per round, built outside the timed call
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        append, setup=lambda: ((_batch(),), {}), rounds=ROUNDS, warmup_rounds=3
    )
    if benchmark.stats is not None:
        benchmark.extra_info["events/s"] = round(BATCH / benchmark.stats.stats.mean)


def test_spool_append(benchmark: BenchmarkFixture, store: SpoolStore) -> None:
    _run(benchmark, store.append)


def test_sqlite_executemany_baseline(benchmark: BenchmarkFixture, bare: sqlite3.Connection) -> None:
    _run(benchmark, _bare_append(bare))
