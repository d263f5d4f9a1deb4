"""Uplinks as real OS processes (tests/uplink/child.py), driven line by line with timeouts."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import ProcessReaper
from tests.spool.helpers import REPO_ROOT

CHILD = "from tests.uplink.child import main; main()"


class UplinkProcess:
    def __init__(self, reaper: ProcessReaper, job: dict[str, Any]) -> None:
        self.proc = reaper.popen(
            [sys.executable, "-c", CHILD],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._buffer = b""
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(job) + b"\n")  # the key goes through stdin only
        self.proc.stdin.flush()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cmdline(self) -> bytes:
        return Path(f"/proc/{self.pid}/cmdline").read_bytes()

    def read_line(self, timeout: float) -> bytes:
        """The next line of stdout, waiting at most `timeout` seconds."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"uplink {self.pid}: no line within {timeout} s")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"uplink {self.pid} ended: {self.stderr_text()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.read_line(timeout))
        assert self.proc.wait(timeout) == 0, self.stderr_text()
        return doc

    def stderr_text(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")


def job(url: str, key: str, spool: Path, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "url": url,
        "key": key,
        "spool": str(spool),
        "config_path": str(tmp_path / "no-config.toml"),
        **extra,
    }


def start_all(
    reaper: ProcessReaper, jobs: list[dict[str, Any]], timeout: float
) -> list[UplinkProcess]:
    """Start one uplink per job; when all are ready, tell them all to go."""
    procs = [UplinkProcess(reaper, j) for j in jobs]
    for p in procs:
        assert p.read_line(timeout) == b"ready"
    for p in procs:
        p.send("go")
    return procs
