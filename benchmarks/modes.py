"""The ways of connecting the client to a server that the benchmark compares.

- `direct`: the server itself, no relay (the baseline every figure is measured against).
- `socat`: `socat -b 262144 - EXEC:"<server>"`, a relay in C (speed only: no exit status).
- `asyncio-relay`: `benchmarks/relays/asyncio_relay.py`, the pass-through people write by hand.
- `python-floor` (only when asked for): `benchmarks/relays/floor_relay.py`, the least a Python
  relay can do (two blocking copy loops, nothing imported): how much of a cost is Python's own.
- `floor-drain` (only when asked for, with `km-uplink-busy`): python-floor timed under that
  mode's drain, as `socat-drain` is.
- `python-exec` (only when asked for): the venv's Python starts, then execs the server: no
  relay at all, only the interpreter's start-up. Its from-spawn ratio is the ceiling of any
  relay written in Python.
- `km`: `.venv/bin/km <server>` with capture on and its own temporary spool (`KM_SPOOL`).
- `km-nocapture` (only when asked for): km with `KM_CAPTURE=0`, to tell forwarding from capture.
- `nocapture-drain` (only when asked for, with `km-uplink-busy`): km-nocapture timed under that
  mode's drain, as `socat-drain` is: km's forwarding alone, under the same load.
- `capture-drain` (only when asked for, with `km-uplink-busy`): km with capture on and no
  uplink of its own, timed under that mode's drain: the same capture work with the drain in
  another process, to tell what the busy km loses to hosting the uplink from what it loses to
  capturing on a loaded machine.
- `km-baseline` (only when asked for): another build of km (the executable named by
  `KM_BASELINE`, e.g. the previous release's venv) with capture on, run exactly like `km`: a
  before/after comparison of a change in the same run.
- `km-uplink-busy` (only when asked for): km with capture on, `KM_API_URL`/`KM_API_KEY` set to
  a local `km serve` and a spool pre-filled with pending events, so its background uplink
  drains throughout (benchmarks/uplink_busy.py); `km` itself runs with the uplink off.
- `socat-drain` (only when asked for, with `km-uplink-busy`): socat, timed while
  `km-uplink-busy`'s uplink drains into the local `km serve`: the same load on the machine, so
  the busy km is compared with a relay that carries the same background work around it.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.driver import Child
from benchmarks.uplink_busy import BusyUplink

VENV_BIN = Path(sys.executable).parent
KM = str(VENV_BIN / "km")
RELAY = str(Path(__file__).parent / "relays" / "asyncio_relay.py")
FLOOR = str(Path(__file__).parent / "relays" / "floor_relay.py")
EXEC_SERVER = "import os, sys; os.execvp(sys.argv[1], sys.argv[1:])"  # python-exec
SOCAT_BUFFER = 262144
KM_VERSION_TIMEOUT_S = 20.0  # `km --version` on a cold cache (imports, .pyc writes)
DEFAULT_MODES = ("direct", "socat", "asyncio-relay", "km")
ALL_MODES = (
    *DEFAULT_MODES,
    "km-baseline",
    "km-nocapture",
    "km-uplink-busy",
    "socat-drain",
    "python-floor",
    "python-exec",
    "floor-drain",
    "nocapture-drain",
    "capture-drain",
)
KM_MODES = (
    "km",
    "km-baseline",
    "km-nocapture",
    "km-uplink-busy",
    "nocapture-drain",
    "capture-drain",
)
RELAY_MODES = frozenset(
    {"socat", "socat-drain", "asyncio-relay", "python-floor", "floor-drain", *KM_MODES}
)
# socat 1.7 splits EXEC's command line at spaces and treats these as address syntax.
_SOCAT_UNSAFE = frozenset(" :,!'\"\\()[]{}")


class ModeUnavailable(Exception):
    """The mode cannot run here (km not installed yet, socat missing, unquotable command)."""


@dataclass(frozen=True, slots=True)
class SpoolCount:
    captured: int  # rows in `events` with kind != 'dropped'
    dropped_frames: int  # sum of "frames" over the 'dropped' rows
    dropped_bytes: int


@dataclass(slots=True)
class Running:
    """One started mode: the child we talk to and, for km, its spool file."""

    mode: str
    child: Child
    spool: str | None
    prefilled: int = 0  # events already in the spool before the run (km-uplink-busy)


def km_status() -> str | None:
    """None when `km --version` works, else why it does not."""
    if not os.access(KM, os.X_OK):
        return f"{KM} does not exist yet"
    try:
        out = subprocess.run(
            [KM, "--version"], capture_output=True, timeout=KM_VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"km --version: {exc}"
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).decode(errors="replace").strip().splitlines()[-1:]
        return f"km --version exited {out.returncode}: {' '.join(tail)}"
    return None


def wrap(mode: str, server: Sequence[str]) -> list[str]:
    """The command line that runs `server` behind `mode`."""
    if mode == "direct":
        return list(server)
    if mode in ("socat", "socat-drain"):
        bad = [arg for arg in server if _SOCAT_UNSAFE.intersection(arg)]
        if bad:
            raise ModeUnavailable(f"socat EXEC cannot carry the argument {bad[0]!r}")
        return ["socat", "-b", str(SOCAT_BUFFER), "-", "EXEC:" + " ".join(server)]
    if mode == "asyncio-relay":
        return [sys.executable, RELAY, *server]
    if mode in ("python-floor", "floor-drain"):
        return [sys.executable, FLOOR, *server]
    if mode == "python-exec":
        return [sys.executable, "-c", EXEC_SERVER, *server]
    if mode == "km-baseline":
        baseline = os.environ.get("KM_BASELINE")
        if not baseline or not os.access(baseline, os.X_OK):
            raise ModeUnavailable("km-baseline needs KM_BASELINE=<path to another km executable>")
        return [baseline, *server]
    if mode in KM_MODES:
        return [KM, *server]
    raise ValueError(f"unknown mode {mode!r}")


class Launcher:
    """Starts modes with their stderr and km spools under one temporary directory."""

    def __init__(self, workdir: str, km_error: str | None, own_sessions: bool = False) -> None:
        self.workdir = workdir
        self.km_error = km_error
        self.own_sessions = own_sessions
        self._seq = itertools.count(1)
        self.busy = BusyUplink(workdir)

    def new_spool(self) -> str:
        return os.path.join(self.workdir, f"spool-{next(self._seq)}.db")

    def start(self, mode: str, server: Sequence[str], spool: str | None = None) -> Running:
        if mode in KM_MODES and self.km_error:
            raise ModeUnavailable(self.km_error)
        argv = wrap(mode, server)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        env["KM_CONFIG"] = os.path.join(self.workdir, "no-config.toml")  # no user API config
        prefilled = 0
        if mode in ("km", "km-baseline", "capture-drain"):
            spool = spool or self.new_spool()
            env["KM_SPOOL"] = spool
        elif mode == "km-uplink-busy":
            spool = self.new_spool()
            prefilled = self.busy.spool(spool)
            env["KM_SPOOL"] = spool
            env.update(self.busy.env())
        elif mode in ("km-nocapture", "nocapture-drain"):
            env["KM_SPOOL"] = self.new_spool()  # keeps the user's spool out of it either way
            env["KM_CAPTURE"] = "0"
            spool = None
        else:
            spool = None
        stderr = os.path.join(self.workdir, f"{mode}-{next(self._seq)}.stderr")
        return Running(mode, Child(argv, stderr, env, self.own_sessions), spool, prefilled)


def stderr_tail(child: Child, lines: int = 3) -> str:
    """The last lines the child wrote to stderr, for error messages."""
    try:
        text = Path(child.stderr_path).read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def read_spool(path: str, after_seq: int = 0) -> SpoolCount:
    """Count what km stored past row `after_seq` (a pre-filled spool's rows are 1..after_seq,
    and its sent ones may be deleted for their age meanwhile); call only after km has exited
    (it flushes at exit)."""
    if not os.path.exists(path):
        raise ModeUnavailable(f"km wrote no spool at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        (captured,) = db.execute(
            "SELECT count(*) FROM events WHERE kind != 'dropped' AND seq > ?", (after_seq,)
        ).fetchone()
        frames = nbytes = 0
        dropped = "SELECT payload FROM events WHERE kind = 'dropped' AND seq > ?"
        for (payload,) in db.execute(dropped, (after_seq,)):
            info = json.loads(payload)
            frames += int(info.get("frames", 0))
            nbytes += int(info.get("bytes", 0))
    finally:
        db.close()
    return SpoolCount(int(captured), frames, nbytes)
