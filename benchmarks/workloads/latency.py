"""Latency: sequential round trips of a small request to a real MCP server, per mode.

Every mode gets its own long-lived server process; the modes take turns in blocks of `BLOCK`
round trips (the order rotating every block) so that machine noise lands on all of them alike.
A round trip is timed from just before the request's `os.write` to the end of its response line.

`km-uplink-busy` starts timing only once its background uplink has delivered a first batch, and
its local API server is frozen outside that mode's turns (benchmarks/uplink_busy.py): `uplink
sent` is what it delivered during the timed part, `uplink left` what was still pending at the end
(above 0: it was draining throughout).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from benchmarks.driver import deadline_in
from benchmarks.modes import Running
from benchmarks.report import Table
from benchmarks.uplink_busy import BUSY, LOADED, sent, wait_draining
from benchmarks.workloads.common import (
    Capture,
    Context,
    describe,
    diff,
    finish,
    percentile,
    verdict,
)

BLOCK = 100  # round trips per mode before the next mode's turn (short: noise spreads evenly)
ROUND_TRIPS = 20_000  # timed per mode: p99 is then the 200th slowest, not one noisy block
WARMUP = 200  # untimed round trips per mode after initialize (JIT, caches, allocator)
START_TIMEOUT_S = 30.0  # spawn + initialize, cold node or python start included
ROUND_TRIP_TIMEOUT_S = 10.0  # one request/response
TARGET_P50_US = 100.0  # km's added latency budget at p50
TARGET_P99_US = 500.0  # and at p99


@dataclass(frozen=True, slots=True)
class Probe:
    title: str
    server: str  # attribute of Servers
    template: bytes  # one request line; %d is the id
    mcp: bool = True  # initialize first (not for the raw echo, which only mirrors lines)


PROBES = (
    Probe(
        "latency: ping -> mcp-server-time (Python SDK)",
        "time",
        b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n',
    ),
    Probe(
        "latency: tools/call echo -> mcp-server-everything (TypeScript SDK)",
        "everything",
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call",'
        b'"params":{"name":"echo","arguments":{"message":"hello"}}}\n',
    ),
    # The relay's own cost without a server's noise: cat mirrors a response-shaped line.
    Probe(
        "latency: raw echo (cat) of a response-shaped line",
        "echo",
        b'{"jsonrpc":"2.0","id":%d,"result":{}}\n',
        mcp=False,
    ),
)

COLUMNS = [
    ("p50_us", "p50 µs"),
    ("p99_us", "p99 µs"),
    ("added_p50_us", "added p50 µs"),
    ("added_p99_us", "added p99 µs"),
    ("samples", "n"),
    ("captured", "km captured"),
    ("dropped", "km dropped"),
    ("lost", "km lost"),
    ("uplink_sent", "uplink sent"),
    ("uplink_left", "uplink left"),
    ("target", "target"),
]
CAPTURED = ("km", BUSY)  # modes whose spool is checked against what crossed the wire


def run(ctx: Context) -> list[Table]:
    return [_probe(ctx, probe) for probe in PROBES]


def _round_trips(
    run: Running, template: bytes, count: int, ids: Iterator[int], out: list[int]
) -> None:
    child = run.child
    clock = time.perf_counter_ns
    for _ in range(count):
        rid = next(ids)
        line = template % rid
        deadline = deadline_in(ROUND_TRIP_TIMEOUT_S)
        t0 = clock()
        child.request(rid, line, deadline)
        out.append(clock() - t0)


def _probe(ctx: Context, probe: Probe) -> Table:
    n = 1000 if ctx.quick else ROUND_TRIPS
    table = Table(probe.title, list(COLUMNS))
    server = getattr(ctx.servers, probe.server)
    ids = itertools.count(1)
    runs: dict[str, Running] = {}
    samples: dict[str, list[int]] = {}
    for mode in ctx.modes:
        table.row(mode)
        started: Running | None = None
        try:
            started = ctx.launcher.start(mode, server)
            if probe.mcp:
                started.child.initialize(deadline_in(START_TIMEOUT_S))
            _round_trips(started, probe.template, WARMUP, ids, [])
            if mode == BUSY and started.spool is not None:
                wait_draining(started.spool)
        except Exception as exc:
            table.row(mode).error = describe(exc, started)
            if started is not None:
                started.child.kill()
            continue
        runs[mode] = started
        samples[mode] = []

    order = list(runs)
    busy = ctx.launcher.busy
    sent_before = {m: sent(r.spool) for m, r in runs.items() if m == BUSY and r.spool}
    sent_after: dict[str, int] = {}
    try:
        for block in range(math.ceil(n / BLOCK)):
            count = min(BLOCK, n - block * BLOCK)
            shift = block % max(1, len(order))
            for mode in order[shift:] + order[:shift]:
                live = runs.get(mode)
                if live is None:
                    continue
                busy.turn(mode in LOADED)
                try:
                    _round_trips(live, probe.template, count, ids, samples[mode])
                except Exception as exc:
                    table.row(mode).error = describe(exc, live)
                    live.child.kill()
                    del runs[mode]
    finally:
        busy.turn(True)  # km's last drain at exit needs the server
        captures = {mode: Capture() for mode in CAPTURED}
        for mode, live in runs.items():
            try:
                if mode in sent_before and live.spool is not None:
                    sent_after[mode] = sent(live.spool)
                finish(live, captures.get(mode))
            except Exception as exc:
                table.row(mode).error = describe(exc, live)

    base = _percentiles(samples.get("direct"))
    for mode, values in samples.items():
        p50, p99 = _percentiles(values)
        row = table.row(mode)
        row.figures.update(
            p50_us=p50,
            p99_us=p99,
            samples=len(values),
            added_p50_us=diff(p50, base[0]) if mode != "direct" else None,
            added_p99_us=diff(p99, base[1]) if mode != "direct" else None,
        )
        if mode in sent_after:
            row.figures["uplink_sent"] = sent_after[mode] - sent_before[mode]
            row.figures["uplink_left"] = runs[mode].prefilled - sent_after[mode]
        if mode in captures:
            capture = captures[mode]
            capture.put_on(row, table)
            a50, a99 = row.figures["added_p50_us"], row.figures["added_p99_us"]
            if isinstance(a50, float) and isinstance(a99, float):
                ok = a50 <= TARGET_P50_US and a99 <= TARGET_P99_US and capture.complete
                row.figures["target"] = verdict(ok)
    table.notes.append(
        f"{n} timed round trips per mode after {WARMUP} warm-up, blocks of {BLOCK} interleaved. "
        f"added = mode minus direct. km target: added p50 <= {TARGET_P50_US:.0f} µs, "
        f"added p99 <= {TARGET_P99_US:.0f} µs, every line captured."
    )
    return table


def _percentiles(values: list[int] | None) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    ordered = sorted(values)
    return percentile(ordered, 50) / 1000, percentile(ordered, 99) / 1000
