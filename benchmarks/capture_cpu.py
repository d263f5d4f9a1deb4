"""The capture process's CPU per frame under the rate workload, without the rest of the session.

`capture_main` (records in, spool rows out: decoding, the pipeline with the analysis and the
redactor on, the spool writer thread) runs in this process on a pipe fed by a thread with the
records the forwarding process would send for N rate-workload messages, each way in turn.
Nothing is dropped: the feeder waits when the pipe is full. Printed: the CPU time of the process
per frame, measured over two runs of N and 2N messages and taken as the difference, so start-up
(imports, opening the spool, the writer thread) does not count; and the wall-clock rate of the
larger run, which on a loaded machine says more about the load than about km.

    .venv/bin/python -m benchmarks.capture_cpu [--messages N] [--repeat R]

On an idle core the capture process keeps up with 1 / (CPU per frame) frames/s at most (its
two threads share the GIL; SQLite's own work runs outside it), and the rate workload's
messages are two frames each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

_CHILD = r"""
import os, sys, threading, time
from benchmarks.workloads.rate import MESSAGE_SIZE, messages
from km.capture.framing import Frame
from km.proxy.records import encode_end, encode_frame
from km.settings import Settings

n = int(sys.argv[1])
lines = messages(n)
records = bytearray()
for i in range(2 * n):
    line = lines[(i // 2) * MESSAGE_SIZE : (i // 2 + 1) * MESSAGE_SIZE - 1]
    records += encode_frame(i % 2, i, i, Frame(line, len(line), False, b""))
records += encode_end(0, 0, 0)
read_fd, write_fd = os.pipe()

def feed():
    view = memoryview(records)
    while view:
        view = view[os.write(write_fd, view[: 1 << 16]) :]
    os.close(write_fd)

from km.proxy.capture_process import capture_main
settings = Settings.load(os.environ)
cpu, wall = time.process_time(), time.perf_counter()
threading.Thread(target=feed, daemon=True).start()
capture_main(settings, ["cat"], os.getpid(), read_fd)
print(time.process_time() - cpu, time.perf_counter() - wall)
"""


def _run(messages: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        env.update(KM_SPOOL=os.path.join(tmp, "spool.db"), KM_CONFIG=os.path.join(tmp, "none"))
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(messages)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=os.getcwd(),
        ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    per_frame, rates = [], []
    for _ in range(args.repeat):
        small_cpu, _ = _run(n)
        large_cpu, large_wall = _run(2 * n)
        per_frame.append((large_cpu - small_cpu) / (2 * n) * 1e6)  # n more messages, 2n frames
        rates.append(4 * n / large_wall)
    print(
        f"capture process CPU per frame: {statistics.median(per_frame):.1f} us "
        f"(runs: {', '.join(f'{x:.1f}' for x in per_frame)}); "
        f"wall-clock rate of the {2 * n:,}-message run: {statistics.median(rates):,.0f} frames/s; "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
