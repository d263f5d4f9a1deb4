"""HTTP ingest into N `km serve --reuse-port` processes sharing one port (SO_REUSEPORT), on
PostgreSQL with the insight analysis on. Run by hand (bounded: `--batches` per stream):

    .venv/bin/python -m benchmarks.ingest_scaling [--processes 1,2] [--streams 4] [--batches 100]

For each process count: start that many `python -m km.server --reuse-port` on one free loopback
port (a schema of its own in KM_TEST_DATABASE_URL, dropped at the end), then `--streams`
clients, each with one kept-alive connection of its own (as an uplink holds one), post batches
of 500 events (the same events as benchmarks/test_bench_ingest.py: ~300-byte tools/call
requests and replies with the insight fields a current km sends, each stream its own sessions),
one batch after another per stream, after a warm-up. The kernel hands each connection to one
process, so a session's batches reach one analyzer (km/server/README.md: scaling).

Printed per process count: events/s (wall clock), and CPU time per event (user + system, from
/proc) of the API processes together (and each one's share: how the kernel spread the
connections), of their PostgreSQL backends and of this client. The API
figure is the one that must not grow with the process count: events/s per API core is
1e6 / (API CPU us per event). Every process runs on the same machine; with C cores, the API
processes, PostgreSQL and the client share them (say so when reporting).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import orjson

from benchmarks.serve_process import ServeProcess
from benchmarks.test_bench_ingest import BATCH, PG_URL, batch_json
from km.server.serve import loop_factory

WARMUP_BATCHES = 3  # per stream, before the clock starts (tokenizer, pools, staging tables)
APP_NAME = "km-ingest-scaling"  # PostgreSQL backends of the API processes, found by this
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Result:
    processes: int
    streams: int
    events: int
    seconds: float
    api_cpu_s: tuple[float, ...]  # per API process
    pg_cpu_s: float
    client_cpu_s: float

    def row(self) -> str:
        us = 1e6 / self.events
        api = sum(self.api_cpu_s)
        split = "/".join(f"{100 * c / api:.0f}" for c in self.api_cpu_s) if api else "-"
        return (
            f"{self.processes:>9} {self.streams:>7} {self.events:>8} {self.seconds:>8.2f} "
            f"{self.events / self.seconds:>9,.0f} {api * us:>14.1f} {split:>11} "
            f"{self.pg_cpu_s * us:>13.1f} {self.client_cpu_s * us:>17.1f}"
        )


HEADER = (
    "processes streams   events  seconds  events/s  API CPU us/ev  API split %  PG CPU us/ev  "
    "client CPU us/ev"
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime (fields 14, 15)


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stream_bodies(stream: int, batches: int) -> list[bytes]:
    """`batches` request bodies of one stream: new sessions of its own (5,000 events each: an
    analyzer is made per session, none rebuilt from stored events), fresh ids."""
    run = uuid.uuid4().hex[:8]
    out = []
    for b in range(batches):
        events = batch_json()
        for e in events:
            e["session_id"] = f"{run}-{stream}-{b // 10}"
        out.append(orjson.dumps({"events": events}))
    return out


async def backend_pids(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", APP_NAME
        )
    finally:
        await conn.close()
    return [r[0] for r in rows]


async def post_stream(url: str, key: str, bodies: list[bytes]) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=1)  # one kept-alive connection, as an uplink
    async with aiohttp.ClientSession(connector=connector) as http:
        for body in bodies:
            async with http.post(f"{url}/api/v1/events", data=body, headers=headers) as r:
                answer = await r.read()
                assert r.status == 200, answer[:200]
                assert len(orjson.loads(answer)["accepted"]) == BATCH


async def measure(
    url: str, key: str, pids: list[int], processes: int, streams: int, batches: int
) -> Result:
    warm = [stream_bodies(s, WARMUP_BATCHES) for s in range(streams)]
    bodies = [stream_bodies(s + streams, batches) for s in range(streams)]
    await asyncio.gather(*(post_stream(url, key, w) for w in warm))
    pg = await backend_pids(PG_URL)
    api0 = [cpu_seconds(p) for p in pids]
    pg0 = {p: cpu_seconds(p) for p in pg}
    client0 = self_cpu_seconds()
    t0 = time.perf_counter()
    await asyncio.gather(*(post_stream(url, key, b) for b in bodies))
    seconds = time.perf_counter() - t0
    client = self_cpu_seconds() - client0
    api = tuple(cpu_seconds(p) - c for p, c in zip(pids, api0, strict=True))
    pg_after = await backend_pids(PG_URL)
    pg_cpu = sum(cpu_seconds(p) - pg0.get(p, 0.0) for p in set(pg) | set(pg_after))
    return Result(processes, streams, streams * batches * BATCH, seconds, api, pg_cpu, client)


@contextlib.contextmanager
def servers(database_url: str, processes: int) -> Iterator[tuple[str, list[int]]]:
    port = free_port()
    started: list[ServeProcess] = []
    try:
        for _ in range(processes):
            # One process alone needs no SO_REUSEPORT (so a km without it can be measured).
            server = ServeProcess(database_url, port=port, reuse_port=processes > 1)
            started.append(server)
            server.start()
        pids = [s.proc.pid for s in started if s.proc is not None]
        yield started[0].url, pids
    finally:
        for server in started:
            server.stop()


def schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}search_path={schema}&application_name={APP_NAME}"


async def execute(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,2", help="process counts to run (1,2)")
    parser.add_argument("--streams", type=int, default=4, help="concurrent uplinks (4)")
    parser.add_argument("--batches", type=int, default=100, help="batches of 500 per stream")
    options = parser.parse_args()
    counts = [int(n) for n in options.processes.split(",")]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; batches of {BATCH}, "
        f"{options.streams} streams x {options.batches} batches per process count"
    )
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(execute(f"CREATE SCHEMA {schema}"))
        try:
            url = schema_url(schema)
            key = ServeProcess(url).create_key()
            print(HEADER)
            for n in counts:
                with servers(url, n) as (api, pids):
                    result = runner.run(
                        measure(api, key, pids, n, options.streams, options.batches)
                    )
                print(result.row(), flush=True)
        finally:
            runner.run(execute(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
