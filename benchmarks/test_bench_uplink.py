"""How fast `km sync` drains a spool of 100,000 events into a real `km serve` (SQLite store)
running as its own process on loopback.

    .venv/bin/pytest benchmarks/test_bench_uplink.py --benchmark-enable -s
    .venv/bin/python -m benchmarks.test_bench_uplink [EVENTS]     # one drain, printed

Group `uplink-drain`, with its baseline measured in the same run:
- `test_km_sync_drain`: `run_sync(["--spool", ..., "--quiet"])`, the `km sync` entry itself:
  claims and leases in the spool, encoding, gzip, HTTP, outcomes written back.
- `test_baseline_bare_posts`: the same events, already encoded and gzipped in batches of 500
  before the timed call, POSTed one after another with a bare aiohttp session: the most the
  server takes from one sequential client. The gap is what the uplink itself costs.

Every round gets a fresh spool of new events (UUIDv7 ids, ~150-byte JSON-RPC payloads as km
captures them), built before the timed call. `extra_info["events_per_s"]` holds the rate.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.serve_process import ServeProcess
from km.capture.ids import uuid7
from km.events import C2S, REQUEST, RESPONSE, S2C, Event, SessionInfo
from km.settings import Settings
from km.spool.store import SpoolStore
from km.uplink.batches import SpoolRow, gzip_body, plan_batches

EVENTS = 100_000
ROUNDS = 3
BATCH = 500  # the uplink's default batch
SESSION = "0190aaaa-0000-7000-8000-00000000beef"


def events(n: int) -> list[Event]:
    out = []
    for i in range(n):
        request = i % 2 == 0
        payload = (
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"search",'
            b'"arguments":{"query":"kilometers %d"}}}' % (i, i)
            if request
            else b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":'
            b'"found %d results"}]}}' % (i, i)
        )
        out.append(
            Event(
                id=uuid7(),
                session_id=SESSION,
                server="bench",
                direction=C2S if request else S2C,
                ts_ns=1_763_780_000_000_000_000 + i * 1000,
                mono_ns=i,
                kind=REQUEST if request else RESPONSE,
                method="tools/call",
                rpc_id=str(i),
                size=len(payload),
                payload=payload,
                latency_us=None if request else 850,
            )
        )
    return out


def fill_spool(path: str, n: int) -> None:
    store = SpoolStore.open(path, 1 << 40)
    try:
        store.begin_session(
            SessionInfo(SESSION, "bench", ("bench",), 1, "bench-host", time.time_ns(), "0.1.0")
        )
        batch = events(n)
        for start in range(0, n, 5000):
            store.append(batch[start : start + 5000])
    finally:
        store.close()


class Bench:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.server = ServeProcess(f"sqlite://{directory}/server.db")
        self.key = self.server.create_key()
        self.server.start()
        self.round = 0

    def settings(self) -> Settings:
        settings = Settings()
        settings.set("config_path", os.path.join(self.directory, "none.toml"), "bench")
        settings.set("api_url", self.server.url, "bench")
        settings.set("api_key", self.key, "bench")
        return settings

    def fresh_spool(self, n: int) -> str:
        self.round += 1
        path = os.path.join(self.directory, f"spool-{self.round}.db")
        fill_spool(path, n)
        return path

    def close(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(tmp)
        try:
            yield b
        finally:
            b.close()


CPU_SECONDS: list[float] = []  # this process's CPU time (all threads) per drain


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drain_with_km_sync(settings: Settings, spool: str) -> None:
    from km.uplink.cli import run_sync

    started = cpu_now()
    code = run_sync(["--spool", spool, "--quiet"], settings)
    CPU_SECONDS.append(cpu_now() - started)
    assert code == 0, f"km sync exited {code}"


def gzipped_bodies(n: int) -> list[bytes]:
    rows = [
        SpoolRow(
            seq=i,
            id=e.id,
            session_id=e.session_id,
            server=e.server,
            direction=e.direction,
            ts_ns=e.ts_ns,
            kind=e.kind,
            method=e.method,
            rpc_id=e.rpc_id,
            size=e.size,
            payload=e.payload,
            latency_us=e.latency_us,
            host="bench-host",
            km_version="0.1.0",
        )
        for i, e in enumerate(events(n))
    ]
    return [gzip_body(b.body) for b in plan_batches(rows, BATCH, 1 << 20)]


async def post_all(url: str, key: str, bodies: list[bytes]) -> None:
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    async with aiohttp.ClientSession(headers=headers) as http:
        for body in bodies:
            async with http.post(f"{url}/api/v1/events", data=body) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()


def record(benchmark: BenchmarkFixture, n: int) -> None:
    mean = benchmark.stats.stats.mean if benchmark.stats else float("nan")
    rate = n / mean
    benchmark.extra_info["events"] = n
    benchmark.extra_info["events_per_s"] = round(rate)
    print(f"\n{benchmark.name}: {n} events in {mean:.2f} s = {rate:,.0f} events/s")


@pytest.mark.benchmark(group="uplink-drain")
def test_km_sync_drain(benchmark: BenchmarkFixture, bench: Bench) -> None:
    settings = bench.settings()

    def setup() -> tuple[tuple[Settings, str], dict[str, Any]]:
        return (settings, bench.fresh_spool(EVENTS)), {}

    CPU_SECONDS.clear()
    benchmark.pedantic(drain_with_km_sync, setup=setup, rounds=ROUNDS)  # type: ignore[no-untyped-call]
    record(benchmark, EVENTS)
    cpu = sum(CPU_SECONDS) / len(CPU_SECONDS)
    benchmark.extra_info["uplink_cpu_us_per_event"] = round(cpu / EVENTS * 1e6, 1)
    print(f"km sync's own CPU time: {cpu:.2f} s = {cpu / EVENTS * 1e6:.1f} us per event")


@pytest.mark.benchmark(group="uplink-drain")
def test_baseline_bare_posts(benchmark: BenchmarkFixture, bench: Bench) -> None:
    def setup() -> tuple[tuple[list[bytes]], dict[str, Any]]:
        return (gzipped_bodies(EVENTS),), {}

    def post(bodies: list[bytes]) -> None:
        asyncio.run(post_all(bench.server.url, bench.key, bodies))

    benchmark.pedantic(post, setup=setup, rounds=ROUNDS)  # type: ignore[no-untyped-call]
    record(benchmark, EVENTS)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else EVENTS
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(tmp)
        try:
            spool = b.fresh_spool(n)
            started = time.perf_counter()
            drain_with_km_sync(b.settings(), spool)
            elapsed = time.perf_counter() - started
            print(f"km sync: {n} events in {elapsed:.2f} s = {n / elapsed:,.0f} events/s")
            cpu = CPU_SECONDS[-1]
            print(f"km sync's own CPU time: {cpu:.2f} s = {cpu / n * 1e6:.1f} us per event")
            bodies = gzipped_bodies(n)
            started = time.perf_counter()
            asyncio.run(post_all(b.server.url, b.key, bodies))
            elapsed = time.perf_counter() - started
            print(f"bare POSTs: {n} events in {elapsed:.2f} s = {n / elapsed:,.0f} events/s")
        finally:
            b.close()


if __name__ == "__main__":
    main()
