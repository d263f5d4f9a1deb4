"""What every workload shares: its settings, statistics, ending a run and checking km's spool."""

from __future__ import annotations

import contextlib
import math
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.driver import Closed
from benchmarks.modes import (
    RELAY_MODES,
    Launcher,
    ModeUnavailable,
    Running,
    read_spool,
    stderr_tail,
)
from benchmarks.report import Row, Table

MIB = 1024 * 1024
MB = 1_000_000
LINGER_WARN_S = 0.1  # a km helper outliving km by more than this is worth a note
STDERR_SETTLE_S = 1.0  # for a failed child to exit and finish writing its stderr


@dataclass(frozen=True, slots=True)
class Servers:
    """The server commands the workloads use."""

    time: tuple[str, ...]  # mcp-server-time (Python SDK)
    everything: tuple[str, ...]  # mcp-server-everything stdio (TypeScript SDK)
    echo: tuple[str, ...]  # the raw line echo: `cat`
    filesystem: tuple[str, ...] = ()  # server-filesystem <allowed dir> (TypeScript SDK)
    memory: tuple[str, ...] = ()  # server-memory (TypeScript SDK)


@dataclass(frozen=True, slots=True)
class Context:
    launcher: Launcher
    modes: tuple[str, ...]
    servers: Servers
    quick: bool


@dataclass(slots=True)
class Capture:
    """km's capture over one or more runs: what the spool holds against what crossed the wire."""

    expected: int = 0
    captured: int = 0
    dropped: int = 0
    exit_s: float = 0.0  # longest time from stdin close to km's exit
    errors: list[str] = field(default_factory=list)  # the capture is not to be trusted
    warnings: list[str] = field(default_factory=list)  # odd, but nothing lost

    @property
    def complete(self) -> bool:
        return not self.errors and self.dropped == 0 and self.captured == self.expected

    def put_on(self, row: Row, table: Table) -> None:
        row.figures["captured"] = f"{self.captured:,}/{self.expected:,}"
        row.figures["dropped"] = self.dropped
        row.figures["lost"] = self.expected - self.captured - self.dropped
        row.figures["exit_s"] = self.exit_s
        if self.errors:
            row.error = "; ".join(dict.fromkeys(self.errors))
        for warning in dict.fromkeys(self.warnings):
            table.notes.append(f"{row.label}: {warning}")


@dataclass(frozen=True, slots=True)
class RunEnd:
    closed: Closed
    peak_rss: tuple[int, ...]  # the spawned process, then its forks; empty if unknown


def finish(run: Running, capture: Capture | None = None) -> RunEnd:
    """Read the relay's peak RSS, close its stdin, reap it; for km, count the spool."""
    rss = run.child.peak_rss()
    closed = run.child.close()
    if run.spool is not None and capture is not None:
        capture.expected += run.child.lines_sent + run.child.lines_received
        _check_end(closed, capture)
        try:
            count = read_spool(run.spool, run.prefilled)
        except (ModeUnavailable, OSError, ValueError) as exc:
            capture.errors.append(str(exc))
        except Exception as exc:  # sqlite3.Error and friends: report, do not stop the run
            capture.errors.append(f"reading spool: {type(exc).__name__}: {exc}")
        else:
            capture.captured += count.captured
            capture.dropped += count.dropped_frames
    return RunEnd(closed, rss)


def _check_end(closed: Closed, capture: Capture) -> None:
    capture.exit_s = max(capture.exit_s, closed.exit_s)
    if closed.exit_code is None:
        capture.errors.append(f"km did not exit within {closed.exit_s:.1f} s of stdin closing")
    elif closed.exit_code != 0:
        capture.warnings.append(f"km exited with code {closed.exit_code}")
    if closed.leftovers:
        capture.errors.append(
            f"{closed.leftovers} process(es) of km's group still running "
            f"{closed.exit_s + closed.linger_s:.1f} s after stdin closed (killed)"
        )
    elif closed.linger_s > LINGER_WARN_S:
        capture.warnings.append(f"a km helper process outlived km by up to {closed.linger_s:.2f} s")


@dataclass(slots=True)
class Peaks:
    """Per mode, the highest peak RSS over its runs: the relay process plus its forks."""

    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def add(self, mode: str, parts: tuple[int, ...]) -> None:
        if mode in RELAY_MODES and sum(parts) > sum(self.parts.get(mode, ())):
            self.parts[mode] = parts

    def total(self, mode: str) -> int | None:
        parts = self.parts.get(mode)
        return sum(parts) if parts else None

    def put_on(self, row: Row, table: Table) -> None:
        parts = self.parts.get(row.label)
        if not parts:
            return
        row.figures["rss_mb"] = sum(parts) / MIB
        if len(parts) > 1:
            split = " + ".join(f"{p / MIB:.1f}" for p in parts)
            table.notes.append(
                f"{row.label} peak RSS = {split} MB (the process started, its forks)"
            )


def describe(exc: BaseException, run: Running | None) -> str:
    """An error message for a table cell, with the child's last stderr lines."""
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ModeUnavailable) else str(exc)
    if run is not None:
        # A crashing child closes stdout a moment before its traceback reaches stderr.
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.child.proc.wait(STDERR_SETTLE_S)
        tail = stderr_tail(run.child)
        if tail:
            text += f" [stderr: {tail}]"
    return text


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def diff(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else value - base


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def verdict(ok: bool | None) -> str | None:
    return None if ok is None else ("ok" if ok else "MISS")
