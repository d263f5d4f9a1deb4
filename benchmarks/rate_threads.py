"""Where the rate workload's time goes, thread by thread, with km in place.

`km cat` (its own temporary spool) gets the rate workload's 150-byte messages at a fixed rate
for a few seconds, as `benchmarks.e2e --only rate` offers them, while a reader takes the echoes.
Printed: what km captured and dropped, how busy the machine's CPUs were, and for every thread
of km's processes and of `cat` its CPU time and its time waiting for a CPU (run-queue wait,
`/proc/<pid>/task/<tid>/schedstat`), both as a share of the wall-clock time. The rest of a
thread's time it slept: on a pipe, on a timer, or on the GIL.

    .venv/bin/python -m benchmarks.rate_threads [--rate MSG_PER_S] [--seconds S]

A capture process that saturates with the machine's CPUs not all busy is bounded by its own
threads taking turns (the GIL), not by the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.modes import read_spool
from benchmarks.procs import descendants
from benchmarks.workloads.rate import MESSAGE_SIZE, PACE_S, messages

KM = str(Path(sys.executable).parent / "km")
SETTLE_S = 0.5  # after the first echo, before the clock starts
DRAIN_TIMEOUT_S = 10.0  # for the echoes still on their way when the writer is done


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    process: str  # "forwarding", "capture", "cat" or the process's own name
    tid: int
    cpu_ns: int
    wait_ns: int  # runnable, waiting for a CPU


def _thread_times(pids: dict[int, str]) -> dict[int, ThreadTimes]:
    found: dict[int, ThreadTimes] = {}
    for pid, role in pids.items():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    cpu, wait = (int(x) for x in f.read().split()[:2])
            except (OSError, ValueError):
                continue
            found[int(tid)] = ThreadTimes(role, int(tid), cpu, wait)
    return found


def _busy_cpus() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def _roles(km_pid: int) -> dict[int, str]:
    """km's forwarding process, its capture process and cat, by pid."""
    roles = {km_pid: "forwarding"}
    for pid in descendants(km_pid):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        roles[pid] = "cat" if name == "cat" else "capture"
    return roles


def run(rate: int, seconds: float) -> None:
    count = int(rate * seconds)
    lines = messages(count)
    with tempfile.TemporaryDirectory(prefix="km-rate-threads-") as tmp:
        spool = os.path.join(tmp, "spool.db")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        env.update(KM_SPOOL=spool, KM_CONFIG=os.path.join(tmp, "none"))
        km = subprocess.Popen(
            [KM, "cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0
        )
        assert km.stdin is not None and km.stdout is not None
        km_in, km_out = km.stdin, km.stdout
        try:
            km_in.write(messages(1))  # an established session
            km_out.read(MESSAGE_SIZE)
            time.sleep(SETTLE_S)
            roles = _roles(km.pid)
            received = [0]

            def read_echoes() -> None:
                while received[0] < count * MESSAGE_SIZE:
                    data = km_out.read(1 << 16)
                    if not data:
                        return
                    received[0] += len(data)

            reader = threading.Thread(target=read_echoes, daemon=True)
            reader.start()
            before, cpus_before = _thread_times(roles), _busy_cpus()
            t0 = time.perf_counter()
            view, sent = memoryview(lines), 0
            while sent < count:
                due = min(count, int((time.perf_counter() - t0) * rate) + 1)
                if due <= sent:
                    time.sleep(PACE_S)
                    continue
                km_in.write(view[sent * MESSAGE_SIZE : due * MESSAGE_SIZE])
                sent = due
            reader.join(DRAIN_TIMEOUT_S)
            wall_ns = (time.perf_counter() - t0) * 1e9
            after, cpus_after = _thread_times(roles), _busy_cpus()
        finally:
            km_in.close()
            km.wait(60)
        stored = read_spool(spool)
        captured, dropped = stored.captured, stored.dropped_frames
    busy = cpus_after[0] - cpus_before[0]
    total = cpus_after[1] - cpus_before[1]
    ncpu = os.cpu_count() or 1
    print(
        f"{rate:,} msg/s for {seconds:g} s through `km cat`: captured {captured:,} of "
        f"{2 * count + 2:,} frames, {dropped:,} dropped; CPUs busy {busy / total * ncpu:.2f} "
        f"of {ncpu}"
    )
    print(f"{'thread':<22}{'CPU':>8}{'waiting for a CPU':>20}{'CPU us/frame':>14}")
    for tid, end in sorted(after.items()):
        start = before.get(tid, ThreadTimes(end.process, tid, 0, 0))
        cpu, wait = end.cpu_ns - start.cpu_ns, end.wait_ns - start.wait_ns
        if cpu < 1_000_000:  # idle threads (the uplink with no API, the checkpointer at rest)
            continue
        print(
            f"{end.process + ' ' + str(tid):<22}{cpu / wall_ns:>8.2f}{wait / wall_ns:>20.2f}"
            f"{cpu / 1000 / (2 * count):>14.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=50_000, help="messages per second")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    run(args.rate, args.seconds)


if __name__ == "__main__":
    main()
