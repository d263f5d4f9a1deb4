"""End-to-end benchmark: km against direct, socat and a plain asyncio relay, in one run.

    .venv/bin/python -m benchmarks.e2e [--quick] [--json OUT] [--modes ...] [--only ...]

See benchmarks/README.md for what each figure means and the targets.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from benchmarks import driver
from benchmarks.modes import ALL_MODES, DEFAULT_MODES, KM_MODES, Launcher, km_status
from benchmarks.report import Row, Table, render, to_json
from benchmarks.uplink_busy import BUSY, DRAINED
from benchmarks.workloads import latency, ping, rate, startup, throughput
from benchmarks.workloads.common import Context, Servers

ROOT = Path(__file__).resolve().parent.parent
NPM_BIN = ROOT / "tests" / "peers" / "node_modules" / ".bin"
EVERYTHING = NPM_BIN / "mcp-server-everything"
DESCRIPTION = "End-to-end benchmark of km against direct, socat and a plain asyncio relay."
RESULTS = Path(__file__).resolve().parent / "results"

WORKLOADS: dict[str, Callable[[Context], list[Table]]] = {
    "latency": latency.run,
    "throughput": throughput.run,
    "rate": rate.run,
    "startup": startup.run,
    "ping": ping.run,  # four real servers, three runs: ~5 min; not in the default set
}
DEFAULT_WORKLOADS = ("latency", "throughput", "rate", "startup")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=DESCRIPTION)
    p.add_argument("--quick", action="store_true", help="fewer samples (about a quarter)")
    p.add_argument(
        "--json",
        metavar="OUT",
        help="results file (default: benchmarks/results/e2e-<time>.json)",
    )
    p.add_argument(
        "--modes",
        nargs="+",
        choices=ALL_MODES,
        default=list(DEFAULT_MODES),
        help="modes to run (direct is always included: it is the baseline)",
    )
    p.add_argument(
        "--own-sessions",
        action="store_true",
        help="start each relay in a session (so a Linux autogroup) of its own, as before "
        "2026-12-07, instead of in the harness's, as an AI client does",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(WORKLOADS),
        default=list(DEFAULT_WORKLOADS),
        help="workloads to run (default: all but ping)",
    )
    return p.parse_args(argv)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds to the finally that kills children


def _servers(workdir: str) -> Servers:
    cat = shutil.which("cat") or "/bin/cat"
    allowed = os.path.join(workdir, "fs-root")  # server-filesystem's one allowed directory
    os.makedirs(allowed, exist_ok=True)
    return Servers(
        time=(sys.executable, "-m", "mcp_server_time"),
        everything=(str(EVERYTHING), "stdio"),
        echo=(cat,),
        filesystem=(str(NPM_BIN / "mcp-server-filesystem"), allowed),
        memory=(str(NPM_BIN / "mcp-server-memory"),),
    )


def _byte_compile_km() -> None:
    """Write km's .pyc files, as installing it does: with PYTHONDONTWRITEBYTECODE set (as on
    this machine), a source edited since `./dev setup` was compiled again at every start, which
    added ~7 ms to km's start-up figure."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "km"), quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    modes = tuple(["direct", *(m for m in args.modes if m != "direct")])
    drained = [m for m in DRAINED if m in modes]
    if drained and BUSY not in modes:
        print(
            f"e2e: {drained[0]} is timed under {BUSY}'s drain: add that mode",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    if any(m in KM_MODES for m in modes):
        _byte_compile_km()
    km_error = km_status() if any(m in KM_MODES for m in modes) else None
    if km_error:
        print(f"km is not usable, its rows will show the error: {km_error}", file=sys.stderr)
    tables: list[Table] = []
    started = time.time()
    workdir = tempfile.mkdtemp(prefix="km-bench-")
    interrupted = False
    ctx: Context | None = None
    try:
        launcher = Launcher(workdir, km_error, args.own_sessions)
        ctx = Context(launcher, modes, _servers(workdir), args.quick)
        for name in args.only:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                tables.extend(WORKLOADS[name](ctx))
            except Exception as exc:  # a harness bug in one workload must not lose the others
                tables.append(Table(name, [("error", "error")], [Row("all", error=repr(exc))]))
            print(f"  {name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    except KeyboardInterrupt as exc:
        interrupted = True
        print(f"interrupted ({exc or 'Ctrl-C'}); partial results follow", file=sys.stderr)
    finally:
        driver.kill_all()
        if ctx is not None:
            ctx.launcher.busy.close()
        shutil.rmtree(workdir, ignore_errors=True)
    render(tables)
    out = args.json or str(RESULTS / f"e2e-{datetime.datetime.now():%Y%m%d-%H%M%S}.json")
    meta = {
        "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "quick": args.quick,
        "interrupted": interrupted,
        "modes": list(modes),
        "own_sessions": args.own_sessions,
        "km_error": km_error,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
    }
    to_json(tables, meta, out)
    print(f"results written to {out}", file=sys.stderr)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
