"""Export throughput (issue 14: JSONL >= 100,000 events/s, OTLP >= 20,000 spans/s).

A spool of `EVENTS` realistic events (tools/call requests and their replies, ~250-byte JSON
payloads, one in 20 truncated so it goes as base64) is built once per module; each round
exports all of it, streamed, to a discarding sink. `extra_info` records events (or spans) per
second. The baseline in the group is the bare read: the same `SELECT *` over the same rows with
nothing encoded, i.e. what SQLite alone costs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from km.events import C2S, REQUEST, RESPONSE, S2C, Event, SessionInfo
from km.export.cli import write_jsonl
from km.export.source import ExportSource
from km.spool.store import SpoolStore
from km.views.spool_read import SpoolReader

EVENTS = 200_000
SESSION = "bench-session"


class Sink:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)


def _events() -> Iterator[list[Event]]:
    batch: list[Event] = []
    for n in range(EVENTS // 2):
        req = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {
                    "name": "get_current_time",
                    "arguments": {"timezone": "Europe/Paris", "n": n},
                },
            }
        )
        reply = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": n,
                "result": {
                    "content": [
                        {
                            "type": "text",
                            "text": f"It is {n % 24}:00 in Paris, a fine time for call {n}",
                        }
                    ]
                },
            }
        )
        if n % 10 == 0:
            reply = reply[:120]  # truncated by the payload cap: not JSON, base64 in the export
        ts = 1_780_000_000_000_000_000 + n * 1000
        batch.append(
            Event(
                f"q{n}",
                SESSION,
                "bench",
                C2S,
                ts,
                n,
                REQUEST,
                "tools/call",
                str(n),
                len(req),
                req,
                tool="get_current_time",
                risk=5,
            )
        )
        batch.append(Event(f"r{n}", SESSION, "bench", S2C, ts + 500, n + 1, RESPONSE,
                           "tools/call", str(n), len(reply), reply, truncated=n % 10 == 0,
                           link_id=f"q{n}", latency_us=500, tool="get_current_time",
                           status="ok", tokens=20, risk=5))  # fmt: skip
        if len(batch) >= 10_000:
            yield batch
            batch = []
    if batch:
        yield batch


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("export") / "spool.db")
    store = SpoolStore.open(path, 10 * 1024**3)
    try:
        store.begin_session(SessionInfo(SESSION, "bench", ("bench",), 1, "host", 1, "bench"))
        for batch in _events():
            store.append(batch)
    finally:
        store.close()
    return path


def test_bare_select(benchmark: BenchmarkFixture, spool: str) -> None:
    benchmark.group = "export 200k events"

    def run() -> int:
        conn = sqlite3.connect(spool)
        try:
            return sum(1 for _ in conn.execute("SELECT * FROM events ORDER BY seq"))
        finally:
            conn.close()

    done = benchmark.pedantic(run, rounds=3, iterations=1)  # type: ignore[no-untyped-call]
    assert done == EVENTS
    _rate(benchmark, "events_per_s")


def _rate(benchmark: BenchmarkFixture, name: str) -> None:
    if benchmark.stats is not None:
        benchmark.extra_info[name] = round(EVENTS / benchmark.stats.stats.min)


def test_jsonl(benchmark: BenchmarkFixture, spool: str) -> None:
    benchmark.group = "export 200k events"

    def run() -> int:
        reader = SpoolReader.open(spool)
        try:
            return write_jsonl(ExportSource(reader, None), Sink(), show=False)[1]  # type: ignore[arg-type]
        finally:
            reader.close()

    done = benchmark.pedantic(run, rounds=3, iterations=1)  # type: ignore[no-untyped-call]
    assert done == EVENTS
    _rate(benchmark, "events_per_s")


def test_otlp_json(benchmark: BenchmarkFixture, spool: str) -> None:
    """Spans built by the OpenTelemetry SDK and written as OTLP JSON (one span an exchange:
    100,000 spans from the 200,000 events)."""
    from km.export.otlp_cli import write_spans
    from km.export.otlp_sdk import JsonFileExporter, SpanWriter

    benchmark.group = "export 200k events"

    def run() -> int:
        reader = SpoolReader.open(spool)
        sink = Sink()
        writer = SpanWriter(JsonFileExporter(sink), metrics=sink)  # type: ignore[arg-type]
        try:
            write_spans(ExportSource(reader, None), writer.write)
            writer.close()
            return writer.sent
        finally:
            reader.close()

    done = benchmark.pedantic(run, rounds=3, iterations=1)  # type: ignore[no-untyped-call]
    assert done == EVENTS // 2
    if benchmark.stats is not None:
        benchmark.extra_info["spans_per_s"] = round(EVENTS // 2 / benchmark.stats.stats.min)
