"""The `cat` latency probe of `benchmarks.e2e`, over many runs with fresh processes.

The e2e latency workload starts one process per mode and times all of its round trips through
that one process. On this 2-core VM a relay's added p50 through `cat` settles, per process,
near one of two levels (~7-20 us or ~50-70 us, socat's as well as km's; what picks the level
was not pinned down), so one process per mode is one draw. This tool starts every mode afresh
for each run (the e2e harness's launcher and driver, modes alive side by side, blocks of
`BLOCK` round trips in rotating order, as there) and prints each run's added p50 against
direct, and their median.

    .venv/bin/python -m benchmarks.echo_runs [--runs N] [--round-trips N] MODE [MODE ...]

MODE is any e2e mode that relays (`socat`, `python-floor`, `km`, `km-baseline` with
`KM_BASELINE=<another km>`, ...); direct always runs.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time

from benchmarks.driver import deadline_in
from benchmarks.modes import ALL_MODES, Launcher, Running
from benchmarks.workloads.latency import BLOCK, PROBES, ROUND_TRIP_TIMEOUT_S, WARMUP

TEMPLATE = next(p.template for p in PROBES if p.server == "echo")
SETTLE_S = 0.5  # after the warm-up, before timing


def one_run(launcher: Launcher, modes: list[str], round_trips: int) -> dict[str, float]:
    """Each mode's median round trip in us, all modes alive at once, timed in turns."""
    ids = itertools.count(1)
    runs: dict[str, Running] = {}
    try:
        for mode in modes:
            runs[mode] = launcher.start(mode, ["cat"])
            _time(runs[mode], WARMUP, ids)
        time.sleep(SETTLE_S)
        samples: dict[str, list[int]] = {m: [] for m in modes}
        for block in range(round_trips // BLOCK):
            shift = block % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                samples[mode] += _time(runs[mode], BLOCK, ids)
    finally:
        for run in runs.values():
            run.child.close()
    return {m: statistics.median(s) / 1000 for m, s in samples.items()}


def _time(run: Running, count: int, ids: itertools.count[int]) -> list[int]:
    out = []
    for _ in range(count):
        rid = next(ids)
        deadline = deadline_in(ROUND_TRIP_TIMEOUT_S)
        t0 = time.perf_counter_ns()
        run.child.request(rid, TEMPLATE % rid, deadline)
        out.append(time.perf_counter_ns() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--round-trips", type=int, default=4000, help="timed, per mode and run")
    parser.add_argument("modes", nargs="+", choices=[m for m in ALL_MODES if m != "direct"])
    args = parser.parse_args()
    modes = ["direct", *args.modes]
    added: dict[str, list[float]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory(prefix="km-echo-runs-") as workdir:
        launcher = Launcher(workdir, None)
        for n in range(args.runs):
            p50 = one_run(launcher, modes, args.round_trips)
            for mode in args.modes:
                added[mode].append(p50[mode] - p50["direct"])
            print(f"run {n + 1}: " + "  ".join(f"{m} {added[m][-1]:+.1f}" for m in args.modes))
    print("added p50 through cat, us: median over runs (each run)")
    for mode, values in added.items():
        each = " ".join(f"{v:+.0f}" for v in values)
        print(f"  {mode:14} {statistics.median(values):+7.1f}  ({each})")


if __name__ == "__main__":
    main()
