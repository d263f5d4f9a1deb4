"""`km serve` in its own process for benchmarks: the real server over real HTTP."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys

SERVER_START_TIMEOUT_S = 30.0  # import, migrate, bind
SERVER_STOP_TIMEOUT_S = 15.0  # SIGTERM, then kill


class ServeProcess:
    """`python -m km.server` on a free loopback port, stopped with SIGTERM (then killed)."""

    def __init__(self, database_url: str, *, port: int = 0, reuse_port: bool = False) -> None:
        self.database_url = database_url
        self.port = port
        self.reuse_port = reuse_port  # several processes on one `port` (SO_REUSEPORT)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def create_key(self) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "km.server", "keys", "create", "--account", "bench",
             "--database-url", self.database_url],
            check=True, capture_output=True, timeout=SERVER_START_TIMEOUT_S,
        ).stdout  # fmt: skip
        return out.decode().strip()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "km.server", "--port", str(self.port), "--rate", "1000000",
             "--burst", "1000000", "--database-url", self.database_url,
             *(["--reuse-port"] if self.reuse_port else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # Its own session, so its own autogroup (Linux): a remote API's CPU is never charged
            # to the client's scheduling group, and here the client is the harness's timer.
            start_new_session=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        seen = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stderr, selectors.EVENT_READ)
            while not (found := re.search(rb"listening on (http://\S+)", seen)):
                if not sel.select(SERVER_START_TIMEOUT_S):
                    raise TimeoutError(f"km serve did not start: {seen.decode()}")
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"km serve exited: {seen.decode()}")
                seen += chunk
        self.url = found.group(1).decode()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()
