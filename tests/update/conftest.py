"""Loopback release servers for `km update`: one serving a directory as a GitHub release does,
one that sends half of each archive and then drops the connection."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class CutOff(http.server.BaseHTTPRequestHandler):
    """Serves SHA256SUMS whole, but an archive only halfway, then drops the connection."""

    directory: Path

    def do_GET(self) -> None:
        path = self.directory / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if path.name == "SHA256SUMS":
            self.wfile.write(data)
            return
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serve(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def release_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(the directory served, its base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    with _serve(functools.partial(_Quiet, directory=str(www))) as url:
        yield www, url


@pytest.fixture
def cut_off_release(release_dir: tuple[Path, str]) -> Iterator[str]:
    """The base URL of a server for release_dir's directory that cuts every archive off."""
    www, _ = release_dir
    with _serve(type("CutOffHere", (CutOff,), {"directory": www})) as url:
        yield url
