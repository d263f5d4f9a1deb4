"""A real `python -m km.server` process on a free loopback port, for tests that need the whole
server (its socket handling, TLS, file modes, resource limits): started, waited for until it
says where it listens, stopped with SIGTERM (then killed), every wait bounded."""

from __future__ import annotations

import http.client
import re
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

START_TIMEOUT_S = 30.0  # import, migrate, bind
STOP_TIMEOUT_S = 15.0  # SIGTERM, then kill
REQUEST_TIMEOUT_S = 20.0


class KmServe:
    def __init__(
        self,
        database_url: str,
        *args: str,
        preexec_fn: Callable[[], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.command = [sys.executable, "-m", "km.server", "--port", "0",
                        "--database-url", database_url, *args]  # fmt: skip
        self.preexec_fn = preexec_fn
        self.ssl_context = ssl_context
        self.url = ""
        self._stderr: list[str] = []
        self._listening = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> KmServe:
        self._proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=self.preexec_fn,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._listening.wait(START_TIMEOUT_S) or not self.url:
            self.stop()
            raise AssertionError(f"km serve did not start: {self.stderr_so_far()}")
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace")
            self._stderr.append(line)
            found = re.search(r"listening on (https?://\S+)", line)
            if found and not self.url:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()  # exited: whoever waits stops waiting

    def stderr_so_far(self) -> str:
        return "".join(self._stderr)

    def stop(self) -> int:
        proc = self._proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        if proc.stderr is not None:
            proc.stderr.close()
        return proc.returncode

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port

    def connection(self, timeout: float = REQUEST_TIMEOUT_S) -> http.client.HTTPConnection:
        if self.url.startswith("https://"):
            return http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str, key: str | None = None) -> tuple[int, Any, http.client.HTTPMessage]:
        """One GET on a new connection: status, decoded JSON body, headers."""
        conn = self.connection()
        try:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, orjson.loads(body) if body else None, resp.headers
        finally:
            conn.close()


def create_key(database_url: str, account: str = "acme") -> str:
    out = subprocess.run(
        [sys.executable, "-m", "km.server", "keys", "create", "--account", account,
         "--database-url", database_url],
        check=True, capture_output=True, timeout=START_TIMEOUT_S,
    ).stdout  # fmt: skip
    return out.decode().strip()
