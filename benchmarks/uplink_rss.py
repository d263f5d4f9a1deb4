"""Peak RSS of an uplink in a process of its own: `km sync` draining the `km-uplink-busy`
backlog (200,000 events, benchmarks.uplink_busy) into a local `km serve`. Against
`benchmarks.rss_busy`'s figures it says what moving the background uplink out of the capture
process would cost in memory (issue 15 items 2 and 3).

    .venv/bin/python -m benchmarks.uplink_rss [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.uplink_busy import PENDING, BusyUplink

KM = str(Path(sys.executable).parent / "km")
SYNC_TIMEOUT_S = 60
POLL_S = 0.02  # how often the peak is read; the drain takes seconds


def one_sync(busy: BusyUplink, workdir: str, n: int) -> tuple[float, float]:
    """Drain a fresh copy of the backlog with `km sync`: its peak RSS in MiB (VmHWM, read
    while it runs: `wait4`'s figure would include the harness's memory it was forked from),
    and the seconds it took."""
    spool = os.path.join(workdir, f"sync-{n}.db")
    busy.spool(spool)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env.update(busy.env())
    env["KM_CONFIG"] = os.path.join(workdir, "no-config.toml")
    t0 = time.monotonic()
    argv = [KM, "sync", "-q", "--spool", spool, "--timeout", str(SYNC_TIMEOUT_S)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kib = 0
    while proc.poll() is None:  # the exec'd process's own high-water mark, while it lives
        peak_kib = max(peak_kib, _hwm_kib(proc.pid))
        time.sleep(POLL_S)
    assert proc.stderr is not None
    if proc.returncode != 0:
        raise RuntimeError(f"km sync exited {proc.returncode}: {proc.stderr.read().decode()}")
    return peak_kib / 1024, time.monotonic() - t0


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass  # it just exited
    return 0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory(prefix="km-uplink-rss-") as workdir:
        busy = BusyUplink(workdir)
        peaks = []
        try:
            for n in range(rounds):
                peak, seconds = one_sync(busy, workdir, n)
                peaks.append(peak)
                print(f"round {n}: km sync drained {PENDING:,} events in {seconds:.1f} s,"
                      f" peak RSS {peak:.1f} MiB")  # fmt: skip
        finally:
            busy.close()
    print(f"median peak RSS of a standalone uplink: {statistics.median(peaks):.1f} MiB")


if __name__ == "__main__":
    main()
