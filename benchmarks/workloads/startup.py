"""Start-up: time from spawn to the first forwarded byte, per mode.

The server writes one JSON-RPC line at once and exits (`/bin/cat` of a one-line file), so the
figure is the mode's own start-up plus one process spawn. Runs interleave the modes; one untimed
run per mode first warms the page cache (and creates km's spool, which later runs reuse, as a
user's spool would already exist). Also reported: how long each mode takes to exit once its
stdin is closed.
"""

from __future__ import annotations

import os
import time

from benchmarks.driver import deadline_in
from benchmarks.modes import Running, read_spool
from benchmarks.report import Table
from benchmarks.workloads.common import Context, describe, diff, finish, median, verdict

LINE = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"up"}}\n'
FIRST_BYTE_TIMEOUT_S = 30.0
RUNS, QUICK_RUNS = 30, 10
TARGET_ADDED_MS = 60.0

COLUMNS = [
    ("median_ms", "first byte ms"),
    ("min_ms", "min ms"),
    ("added_ms", "added ms"),
    ("exit_ms", "exit ms"),
    ("runs", "runs"),
    ("captured", "km captured"),
    ("target", "target"),
]


def _one_run(ctx: Context, mode: str, server: list[str], spool: str | None) -> tuple[float, float]:
    """Returns (ms to first byte, ms from stdin close to exit)."""
    started: Running | None = None
    try:
        deadline = deadline_in(FIRST_BYTE_TIMEOUT_S)
        t0 = time.perf_counter_ns()
        started = ctx.launcher.start(mode, server, spool)
        started.child.wait_readable(deadline)
        first = time.perf_counter_ns() - t0
        end = finish(started)
        if started.child.lines_received != 1:
            raise RuntimeError(f"expected 1 line back, got {started.child.lines_received}")
        if end.closed.exit_code is None:
            raise RuntimeError(f"did not exit within {end.closed.exit_s:.1f} s of stdin closing")
    except Exception as exc:
        if started is not None:
            started.child.kill()
        raise RuntimeError(describe(exc, started)) from exc
    return first / 1e6, end.closed.exit_s * 1000


def run(ctx: Context) -> list[Table]:
    runs = QUICK_RUNS if ctx.quick else RUNS
    path = os.path.join(ctx.launcher.workdir, "startup-line.json")
    with open(path, "wb") as f:
        f.write(LINE)
    server = ["/bin/cat", path]
    spools = {mode: ctx.launcher.new_spool() if mode == "km" else None for mode in ctx.modes}
    table = Table("start-up: spawn to first forwarded byte", list(COLUMNS))
    firsts: dict[str, list[float]] = {mode: [] for mode in ctx.modes}
    exits: dict[str, list[float]] = {mode: [] for mode in ctx.modes}
    failed: set[str] = set()
    for mode in ctx.modes:
        table.row(mode)  # rows in mode order, whichever fails first
    for i in range(runs + 1):
        shift = i % len(ctx.modes)
        for mode in ctx.modes[shift:] + ctx.modes[:shift]:
            if mode in failed:
                continue
            try:
                first, exit_ms = _one_run(ctx, mode, server, spools[mode])
            except RuntimeError as exc:
                table.row(mode).error = str(exc)
                failed.add(mode)
                continue
            if i:  # run 0 is the warm-up
                firsts[mode].append(first)
                exits[mode].append(exit_ms)

    base = median(firsts["direct"]) if firsts.get("direct") else None
    for mode in ctx.modes:
        row = table.row(mode)
        if not firsts[mode]:
            continue
        med = median(firsts[mode])
        row.figures.update(
            median_ms=med,
            min_ms=min(firsts[mode]),
            added_ms=diff(med, base) if mode != "direct" else None,
            exit_ms=median(exits[mode]),
            runs=len(firsts[mode]),
        )
        spool = spools.get(mode)
        if spool is not None and mode not in failed:
            _check_spool(row.figures, spool, runs + 1)
            added = row.figures["added_ms"]
            if isinstance(added, float):
                complete = row.figures.get("captured") == f"{runs + 1}/{runs + 1}"
                row.figures["target"] = verdict(added <= TARGET_ADDED_MS and complete)
    table.notes.append(
        f"median of {runs} runs per mode (after 1 warm-up), interleaved; the server is "
        f"`/bin/cat <one-line file>`. added = mode minus direct. exit = stdin close to exit. "
        f"km target: added <= {TARGET_ADDED_MS:.0f} ms, every line captured."
    )
    return [table]


def _check_spool(figures: dict[str, float | int | str | None], spool: str, lines: int) -> None:
    try:
        count = read_spool(spool)
    except Exception as exc:  # sqlite3.Error too: report it in the cell, go on
        figures["captured"] = f"error: {exc}"
        return
    text = f"{count.captured}/{lines}"
    if count.dropped_frames:
        text += f" ({count.dropped_frames} dropped)"
    figures["captured"] = text
