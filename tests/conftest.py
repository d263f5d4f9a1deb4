"""Shared fixtures: an isolated spool per test, and a way to run `km` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

KM = [sys.executable, "-m", "km"]


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool.db"


@pytest.fixture
def km_env(spool_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KM_SPOOL"] = str(spool_path)
    env["KM_GRACE"] = "0.3"
    env.pop("KM_NAME", None)
    return env


class ProcessReaper:
    """Kills, at teardown, every process group a test started and left behind."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pids: list[int] = []

    def popen(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(args, **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def track(self, pid: int) -> None:
        self.pids.append(pid)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:  # stdin's buffered bytes to a killed process: EPIPE
                        pass
        for pid in self.pids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


@pytest.fixture
def reaper() -> Iterator[ProcessReaper]:
    r = ProcessReaper()
    try:
        yield r
    finally:
        r.kill_all()
