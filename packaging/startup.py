"""Start-up cost of one or more `km` executables: time to the first forwarded byte of
`km cat` (a line written at once, the clock stops when `cat`'s echo comes out of km), with
`cat` alone as the baseline measured in the same run, runs interleaved.

    .venv/bin/python packaging/startup.py [--runs N] KM [KM ...]

Each km gets its own temporary spool (capture on, as in real use). Prints median, p10 and p90
in milliseconds, and the median added over direct `cat`.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

LINE = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}\n'
READ_TIMEOUT_S = 10.0  # a km that has not forwarded one line by then is broken, not slow


def first_byte_ms(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None
    os.write(proc.stdin.fileno(), LINE)
    ready, _, _ = select.select([proc.stdout], [], [], READ_TIMEOUT_S)
    elapsed = (time.perf_counter() - started) * 1000
    if not ready or not os.read(proc.stdout.fileno(), 65536):
        proc.kill()
        raise RuntimeError(f"{argv[0]}: nothing forwarded within {READ_TIMEOUT_S} s")
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("km", nargs="+")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KM_", "PYTHON"))}
        env["KM_SPOOL"] = os.path.join(tmp, "spool.db")
        cases = {"cat (direct)": ["cat"], **{km: [km, "cat"] for km in args.km}}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for argv in cases.values():  # warm the page cache and create the spool
            first_byte_ms(argv, env)
        for _ in range(args.runs):
            for name, argv in cases.items():
                times[name].append(first_byte_ms(argv, env))
    base = statistics.median(times["cat (direct)"])
    print(f"time to first forwarded byte, {args.runs} runs each (ms)")
    for name, values in times.items():
        q = statistics.quantiles(values, n=10)
        median = statistics.median(values)
        print(
            f"  {name:48} median {median:6.1f}  p10 {q[0]:6.1f}  p90 {q[-1]:6.1f}"
            f"  added {median - base:+6.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
