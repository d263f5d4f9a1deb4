"""Micro-benchmarks of the capture process's cost per message (issue 15, item 4).

The e2e rate workload (`benchmarks/workloads/rate.py`) offers 150-byte notifications; each one
crosses twice (client to `cat`, `cat` back), so 50,000 messages/s is 100,000 frames/s and the
capture process has ~10 us a frame, both of its threads together. Two groups, each with the
former way measured in the same run as its baseline:

- `capture: one read of 150-byte notifications`: one 64 KiB read's records (354 frames)
  decoded and turned into events with the analysis and the redactor on, as the capture thread
  does it (`RecordDecoder.feed_frames`, `CapturePipeline.process_many`), against `per-message`
  (`RecordDecoder.feed`, then `process` for each record: one redaction scan and one id each,
  the capture thread's former shape; the per-message code is today's, so the ratio is the
  batching's share alone).
- `capture: spool rows for one read`: `SpoolStore.append` of those events (up to 48 rows a
  statement, no None bound), against `row-by-row` (the same transaction with the former
  statement: one row a step, NULLs bound as None).

`extra_info` has us per frame. Fresh event ids every round (the spool skips ids it has).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.workloads.rate import MESSAGE_SIZE, messages
from km.capture.framing import Frame
from km.capture.pipeline import CapturePipeline
from km.events import Event, SessionInfo
from km.proxy.capture_process import READ_SIZE
from km.proxy.records import HEADER_SIZE, RecordDecoder, encode_frame
from km.settings import Settings
from km.spool.store import SpoolStore

ROUNDS = 60
SESSION = "bench-session"
_FORMER_INSERT = """
    INSERT INTO events (id, session_id, server, direction, ts_ns, mono_ns, kind, method, rpc_id,
                        size, payload, truncated, link_id, latency_us, tool, status, tokens, risk)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING
"""


def _one_read() -> bytes:
    """A read's worth of records: the rate workload's lines, each way in turn."""
    count = READ_SIZE // (HEADER_SIZE + MESSAGE_SIZE - 1)
    lines = messages(count // 2 + 1)
    out = bytearray()
    for i in range(count):
        line = lines[(i // 2) * MESSAGE_SIZE : (i // 2 + 1) * MESSAGE_SIZE - 1]
        out += encode_frame(i % 2, 1000 + i, 2000 + i, Frame(line, len(line), False, b""))
    return bytes(out)


READ = _one_read()
FRAMES = len(RecordDecoder().feed(READ))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load({"KM_SPOOL": str(tmp_path / "spool.db")})


def _pipeline(settings: Settings) -> CapturePipeline:
    from functools import partial

    from km.redact import unchanged_payloads
    from km.spool.insight import analyzing_pipeline

    pipeline = analyzing_pipeline(settings, SESSION, "bench")
    pipeline.redact_clean = partial(unchanged_payloads, rules=settings.redaction_rules())
    return pipeline


def _report(benchmark: BenchmarkFixture) -> None:
    benchmark.extra_info["frames"] = FRAMES
    stats = benchmark.stats
    if stats is not None:
        benchmark.extra_info["us_per_frame"] = round(stats.stats.median / FRAMES * 1e6, 2)


@pytest.mark.benchmark(group="capture: one read of 150-byte notifications")
def test_per_read(benchmark: BenchmarkFixture, settings: Settings) -> None:
    pipeline = _pipeline(settings)
    decoder = RecordDecoder()

    def run() -> list[Event]:
        frames, _ = decoder.feed_frames(READ)
        return pipeline.process_many(frames)

    events = benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=2)  # type: ignore[no-untyped-call]
    assert len(events) == FRAMES
    _report(benchmark)


@pytest.mark.benchmark(group="capture: one read of 150-byte notifications")
def test_per_message(benchmark: BenchmarkFixture, settings: Settings) -> None:
    pipeline = _pipeline(settings)
    decoder = RecordDecoder()

    def run() -> list[Event]:
        process = pipeline.process
        return [
            process(r.direction, r.mono_ns, r.wall_ns, r.frame)  # type: ignore[arg-type]
            for r in decoder.feed(READ)
        ]

    events = benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=2)  # type: ignore[no-untyped-call]
    assert len(events) == FRAMES
    _report(benchmark)


@pytest.fixture
def store(settings: Settings) -> Iterator[SpoolStore]:
    s = SpoolStore.open(settings.resolve_spool_path(), 1 << 40)
    s.begin_session(SessionInfo(SESSION, "bench", ("bench",), os.getpid(), "host", 1, "bench"))
    yield s
    s.close()


def _fresh_events(settings: Settings) -> tuple[tuple[list[Event]], dict[str, object]]:
    frames, _ = RecordDecoder().feed_frames(READ)
    return (_pipeline(settings).process_many(frames),), {}


@pytest.mark.benchmark(group="capture: spool rows for one read")
def test_append(benchmark: BenchmarkFixture, settings: Settings, store: SpoolStore) -> None:
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        store.append, setup=lambda: _fresh_events(settings), rounds=ROUNDS, warmup_rounds=1
    )
    _report(benchmark)


@pytest.mark.benchmark(group="capture: spool rows for one read")
def test_row_by_row(benchmark: BenchmarkFixture, settings: Settings, store: SpoolStore) -> None:
    conn = sqlite3.connect(store.path, isolation_level=None, timeout=5)

    def append(events: list[Event]) -> None:
        rows = [
            (e.id, e.session_id, e.server, e.direction, e.ts_ns, e.mono_ns, e.kind, e.method,
             e.rpc_id, e.size, e.payload, int(e.truncated), e.link_id, e.latency_us, e.tool,
             e.status, e.tokens, e.risk)
            for e in events
        ]  # fmt: skip
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_FORMER_INSERT, rows)
        conn.execute("COMMIT")

    try:
        benchmark.pedantic(  # type: ignore[no-untyped-call]
            append, setup=lambda: _fresh_events(settings), rounds=ROUNDS, warmup_rounds=1
        )
    finally:
        conn.close()
    _report(benchmark)


def test_the_read_is_one_capture_process_read() -> None:
    assert len(READ) <= READ_SIZE
    assert FRAMES > 300
