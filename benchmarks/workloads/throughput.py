"""Throughput: large messages pipelined through each mode, as MB/s and as a fraction of direct.

A writer thread sends every message back to back while the main thread reads the replies, so the
pipes stay full. The clock runs from the first write to the last reply byte. Each run is a fresh
process; the modes take turns run by run. The relay's peak RSS (VmHWM) is read before its stdin
is closed.

A session is measured once it is established, as an MCP client would use it: one exchange first
(`initialize` for an MCP server, one short line for `cat`), then `SETTLE_S`, the least a real
server takes to start (so km's capture process, which loads its modules and opens the spool in
~60 ms, is ready, as it always is behind a real server), then the clock starts; every mode gets
the same. Two cases are also run from spawn, with no exchange and no pause, for what a burst in
a session's very first milliseconds gets: 128 x 1 MiB without a target, and 64 x 1 MiB (64 MiB
each way in well under a second) held to the same targets (issue 15: km's capture process must
not slow such a burst down nor drop its captures).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from benchmarks.driver import Child, deadline_in
from benchmarks.modes import Running
from benchmarks.report import Table
from benchmarks.workloads.common import (
    MB,
    MIB,
    Capture,
    Context,
    Peaks,
    describe,
    finish,
    median,
    ratio,
    verdict,
)

START_TIMEOUT_S = 30.0  # spawn + initialize
RUN_TIMEOUT_S = 180.0  # one case's messages, there and back, on the slowest mode
JOIN_TIMEOUT_S = 10.0  # the writer thread, once the reader is done or the child is dead
TARGET_RATIO = 0.8  # km's throughput as a fraction of direct
TARGET_RSS = 60 * MIB  # km's peak resident memory
REPS = 5  # runs per mode and case: single runs of a pipelined burst vary by +-30% here
SETTLE_S = 0.5  # after the first exchange: what the quickest real MCP server takes to start
WARM_LINE = b'{"jsonrpc":"2.0","method":"bench/hello"}\n'
CASES_ENV = "BENCH_THROUGHPUT_CASES"  # run only the cases whose title contains this text


@dataclass(frozen=True, slots=True)
class Case:
    title: str
    server: str  # attribute of Servers
    size: int  # bytes per message line, newline included (approximately, for tools/call)
    count: int
    quick_count: int
    mcp: bool  # initialize first and send tools/call echo requests
    established: bool = True  # one exchange and SETTLE_S before the clock; False: from spawn
    target: bool | None = None  # held to the targets (None: when established)

    @property
    def has_target(self) -> bool:
        return self.established if self.target is None else self.target


CASES = (
    Case("throughput: 1 MiB lines through cat", "echo", MIB, 256, 32, mcp=False),
    Case("throughput: 16 MiB lines through cat", "echo", 16 * MIB, 16, 4, mcp=False),
    Case(
        "throughput: 1 MiB tools/call echo -> server-everything", "everything", MIB, 8, 3, mcp=True
    ),
    Case(
        "throughput: 1 MiB lines through cat, from spawn (no target)",
        "echo",
        MIB,
        128,
        32,
        mcp=False,
        established=False,
    ),
    Case(
        "throughput: 64 x 1 MiB lines through cat, from spawn",
        "echo",
        MIB,
        64,
        64,  # the point of the case: 64 MiB each way in the first second, quick or not
        mcp=False,
        established=False,
        target=True,
    ),
)

COLUMNS = [
    ("mb_s", "MB/s"),
    ("vs_direct", "x direct"),
    ("rss_mb", "peak RSS MB"),
    ("runs", "runs"),
    ("captured", "km captured"),
    ("dropped", "km dropped"),
    ("lost", "km lost"),
    ("exit_s", "km exit s"),
    ("target", "target"),
]


def blob_line(size: int) -> bytes:
    """A JSON-RPC notification of exactly `size` bytes, newline included."""
    head = b'{"jsonrpc":"2.0","method":"bench/blob","params":{"data":"'
    tail = b'"}}\n'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def echo_request(rpc_id: int, size: int) -> bytes:
    head = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo",' % rpc_id
    head += b'"arguments":{"message":"'
    tail = b'"}}}\n'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def run(ctx: Context) -> list[Table]:
    wanted = os.environ.get(CASES_ENV, "")
    return [_case(ctx, case) for case in CASES if wanted.lower() in case.title.lower()]


def _write_all(
    child: Child, messages: list[bytes], deadline: int, errors: list[BaseException]
) -> None:
    try:
        for message in messages:
            child.write(message, 1, deadline)
    except BaseException as exc:  # handed to the main thread
        errors.append(exc)


def _pipelined(child: Child, messages: list[bytes]) -> float:
    """Send all messages while reading as many reply lines; returns MB/s of replies."""
    deadline = deadline_in(RUN_TIMEOUT_S)
    errors: list[BaseException] = []
    writer = threading.Thread(
        target=_write_all, args=(child, messages, deadline, errors), daemon=True
    )
    before = child.bytes_received
    t0 = time.perf_counter_ns()
    writer.start()
    try:
        last = child.count_lines(len(messages), deadline)
    except BaseException:
        child.kill()  # unblocks the writer
        raise
    finally:
        writer.join(JOIN_TIMEOUT_S)
    if errors:
        raise errors[0]
    return (child.bytes_received - before) / MB / ((last - t0) / 1e9)


def _one_run(
    ctx: Context, case: Case, mode: str, capture: Capture
) -> tuple[float, tuple[int, ...]]:
    started: Running | None = None
    try:
        started = ctx.launcher.start(mode, getattr(ctx.servers, case.server))
        count = case.quick_count if ctx.quick else case.count
        if case.mcp:
            started.child.initialize(deadline_in(START_TIMEOUT_S))
            messages = [echo_request(i + 1, case.size) for i in range(count)]
        else:
            if case.established:
                started.child.write(WARM_LINE, 1, deadline_in(START_TIMEOUT_S))
                started.child.readline(deadline_in(START_TIMEOUT_S))
            messages = [blob_line(case.size)] * count
        if case.established:
            time.sleep(SETTLE_S)
        rate = _pipelined(started.child, messages)
        end = finish(started, capture if mode == "km" else None)
    except Exception as exc:
        if started is not None:
            started.child.kill()
        raise RuntimeError(describe(exc, started)) from exc
    return rate, end.peak_rss


def _case(ctx: Context, case: Case) -> Table:
    reps = 1 if ctx.quick else REPS
    table = Table(case.title, list(COLUMNS))
    rates: dict[str, list[float]] = {mode: [] for mode in ctx.modes}
    peaks = Peaks()
    capture = Capture()
    failed: set[str] = set()
    for mode in ctx.modes:
        table.row(mode)  # rows in mode order, whichever fails first
    for _ in range(reps):
        for mode in ctx.modes:
            if mode in failed:
                continue
            try:
                rate, rss = _one_run(ctx, case, mode, capture)
            except RuntimeError as exc:
                table.row(mode).error = str(exc)
                failed.add(mode)
                continue
            rates[mode].append(rate)
            peaks.add(mode, rss)

    base = median(rates["direct"]) if rates.get("direct") else None
    for mode in ctx.modes:
        row = table.row(mode)
        if not rates[mode]:
            continue
        mb_s = median(rates[mode])
        row.figures.update(
            mb_s=mb_s,
            vs_direct=ratio(mb_s, base),
            runs=len(rates[mode]),
        )
        peaks.put_on(row, table)
        if mode == "km":
            capture.put_on(row, table)
            share = row.figures["vs_direct"]
            if isinstance(share, float) and case.has_target:
                rss_ok = (peaks.total("km") or 0) <= TARGET_RSS
                ok = share >= TARGET_RATIO and rss_ok and capture.complete
                row.figures["target"] = verdict(ok)
    count = case.quick_count if ctx.quick else case.count
    start = (
        f"clock from the first message, after one exchange and {SETTLE_S:g} s"
        if case.established
        else "clock from spawn: the burst meets km's capture process while it starts"
    )
    table.notes.append(
        f"{count} messages of {case.size / MIB:g} MiB per run, pipelined, median of {reps} run(s) "
        f"per mode, modes interleaved, {start}. MB = 10^6 bytes of replies. km target: >= "
        f"{TARGET_RATIO:g} x direct, peak RSS <= {TARGET_RSS // MIB} MB, every line captured."
    )
    return table
