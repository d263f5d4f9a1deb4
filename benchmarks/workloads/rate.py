"""Sustained rate: small JSON-RPC notifications through `cat` at stepped offered rates.

Each step offers a fixed rate (messages of `MESSAGE_SIZE` bytes) for a fixed time, then one step
sends a fixed number as fast as it can (`max`). A writer thread paces the messages; the main
thread counts them back. Every (step, mode) is a fresh process, modes taking turns within a
step, so km's spool after each run tells how many lines it captured and dropped at that rate.

Each run measures an established session, as the throughput workload does: one line through
first, then `SETTLE_S` (the least a real MCP server takes to start), then the step, for every
mode alike. From spawn, km's capture process is still loading its modules and opening the spool
while the first ~28,000 frames fill its buffers (the forwarding process's 4 MiB and the 1 MiB
pipe): that is start-up (issue 15 item 1, the throughput workload's from-spawn case), and it
decided this workload's figure before (`captured` stopped at ~28,340 frames in every step).
"""

from __future__ import annotations

import threading
import time

from benchmarks.driver import Child, deadline_in
from benchmarks.modes import Running
from benchmarks.report import Table
from benchmarks.workloads.common import (
    MIB,
    Capture,
    Context,
    Peaks,
    describe,
    finish,
    verdict,
)
from benchmarks.workloads.throughput import SETTLE_S, START_TIMEOUT_S, WARM_LINE

MESSAGE_SIZE = 150  # bytes per notification, newline included
STEPS = (10_000, 20_000, 40_000, 50_000, 80_000)  # offered messages per second
STEP_S, QUICK_STEP_S = 2.0, 1.0  # seconds each step offers its rate
BLAST, QUICK_BLAST = 200_000, 50_000  # messages in the unpaced `max` step
PACE_S = 0.0005  # writer's nap when it is ahead of schedule (pacing, not synchronisation)
DRAIN_TIMEOUT_S = 60.0  # on top of the step's duration, for a relay that lags
JOIN_TIMEOUT_S = 10.0
TARGET_RSS = 60 * MIB  # km's peak resident memory, its capture process included
TARGET_RATE = 50_000  # km must capture everything, dropping nothing, at least up to this rate


def messages(count: int) -> bytes:
    """`count` notifications of exactly MESSAGE_SIZE bytes each, back to back."""
    head = '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"'
    tail = '"}}\n'
    pad = "x" * (MESSAGE_SIZE - len(head) - len(tail) - 9)
    return "".join(f"{head}{i:08d} {pad}{tail}" for i in range(count)).encode()


def _paced_write(
    child: Child, buf: bytes, rate: float | None, deadline: int, errors: list[BaseException]
) -> None:
    try:
        view = memoryview(buf)
        total = len(buf) // MESSAGE_SIZE
        sent = 0
        t0 = time.perf_counter()
        while sent < total:
            due = total if rate is None else min(total, int((time.perf_counter() - t0) * rate) + 1)
            if due <= sent:
                time.sleep(PACE_S)
                continue
            child.write(view[sent * MESSAGE_SIZE : due * MESSAGE_SIZE], due - sent, deadline)
            sent = due
    except BaseException as exc:  # handed to the main thread
        errors.append(exc)


def _one_run(
    ctx: Context, mode: str, buf: bytes, rate: float | None, seconds: float, capture: Capture
) -> tuple[float, tuple[int, ...]]:
    """Returns (delivered messages/s, peak RSS of the relay and its forks)."""
    started: Running | None = None
    try:
        started = ctx.launcher.start(mode, ctx.servers.echo)
        child = started.child
        child.write(WARM_LINE, 1, deadline_in(START_TIMEOUT_S))  # an established session
        child.readline(deadline_in(START_TIMEOUT_S))
        time.sleep(SETTLE_S)
        total = len(buf) // MESSAGE_SIZE
        deadline = deadline_in(seconds + DRAIN_TIMEOUT_S)
        errors: list[BaseException] = []
        writer = threading.Thread(
            target=_paced_write, args=(child, buf, rate, deadline, errors), daemon=True
        )
        t0 = time.perf_counter_ns()
        writer.start()
        try:
            last = child.count_lines(total, deadline)
        except BaseException:
            child.kill()
            raise
        finally:
            writer.join(JOIN_TIMEOUT_S)
        if errors:
            raise errors[0]
        end = finish(started, capture if mode == "km" else None)
    except Exception as exc:
        if started is not None:
            started.child.kill()
        raise RuntimeError(describe(exc, started)) from exc
    return total / ((last - t0) / 1e9), end.peak_rss


def run(ctx: Context) -> list[Table]:
    seconds = QUICK_STEP_S if ctx.quick else STEP_S
    blast = QUICK_BLAST if ctx.quick else BLAST
    steps: list[tuple[str, float | None, int]] = [
        (f"{r // 1000}k/s", float(r), int(r * seconds)) for r in STEPS
    ]
    steps.append(("max", None, blast))
    rates = Table(
        "sustained rate: 150-byte notifications through cat, delivered k msg/s",
        [(label, label) for label, _, _ in steps]
        + [("rss_mb", "peak RSS MB"), ("target", "target")],
    )
    km = Table(
        "sustained rate: km capture per step",
        [
            ("offered", "offered msg/s"),
            ("delivered", "delivered msg/s"),
            ("captured", "km captured"),
            ("dropped", "km dropped"),
            ("lost", "km lost"),
            ("exit_s", "km exit s"),
            ("target", "target"),
        ],
    )
    for mode in ctx.modes:
        rates.row(mode)
    failed: set[str] = set()
    peaks = Peaks()
    zero_drop: float | None = None
    zero_drop_broken = False
    for label, rate, count in steps:
        buf = messages(count)
        capture = Capture()
        for mode in ctx.modes:
            if mode in failed:
                continue
            try:
                delivered, rss = _one_run(ctx, mode, buf, rate, count / (rate or 1e9), capture)
            except RuntimeError as exc:
                rates.row(mode).error = f"{label}: {exc}"
                failed.add(mode)
                if mode == "km":
                    km.row(label).error = str(exc)
                continue
            row = rates.row(mode)
            row.figures[label] = delivered / 1000
            peaks.add(mode, rss)
            if mode == "km":
                step = km.row(label)
                step.figures.update(offered=rate, delivered=delivered)
                capture.put_on(step, km)
                if capture.complete and not zero_drop_broken:
                    zero_drop = rate if rate is not None else delivered
                elif not capture.complete:
                    zero_drop_broken = True
        del buf
    for mode in ctx.modes:
        peaks.put_on(rates.row(mode), rates)
    km_rss = peaks.total("km")
    if km_rss is not None:
        rates.row("km").figures["target"] = verdict(km_rss <= TARGET_RSS)
    if "km" in ctx.modes and "km" not in failed:
        summary = km.row("zero-drop rate")
        summary.figures["offered"] = zero_drop
        summary.figures["target"] = verdict(zero_drop is not None and zero_drop >= TARGET_RATE)
    seconds_note = f"{seconds:g} s per paced step, {blast:,} messages in the unpaced `max` step"
    rates.notes.append(
        f"{seconds_note}; a fresh process per (step, mode), modes interleaved within a step, "
        f"each an established session (one line through, then {SETTLE_S:g} s). "
        "A mode that keeps up delivers the offered rate. "
        f"km target: peak RSS <= {TARGET_RSS // MIB} MB."
    )
    km.notes.append(
        "captured counts spool rows (kind != 'dropped') against lines sent + lines received. "
        f"zero-drop rate = highest consecutive step with 0 drops and every line captured "
        f"(the `max` step counts at its delivered rate). Target >= {TARGET_RATE:,} msg/s."
    )
    return [rates, km]
