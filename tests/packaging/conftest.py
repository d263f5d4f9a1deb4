"""The real self-contained build, made once per test session by packaging/build.sh, and a
loopback HTTP server that serves it the way a GitHub release does."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900  # PyInstaller plus packing takes ~30 s here; a cold CI machine is slower


@dataclass(frozen=True, slots=True)
class Release:
    """A directory holding km-<version>-<platform>.tar.gz and SHA256SUMS."""

    directory: Path
    archive: Path
    version: str


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    if not shutil.which("tar") or os.uname().sysname != "Linux":
        pytest.skip("the release build is tested on Linux")
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.fail("PyInstaller is missing: ./dev setup installs it (the test extra)")
    out = tmp_path_factory.mktemp("release")
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build.sh"), "--out", str(out), "--no-smoke"],
        cwd=ROOT,
        capture_output=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    print(f"packaging/build.sh took {time.monotonic() - started:.1f} s")
    archives = sorted(out.glob("km-*-linux-*.tar.gz"))
    assert len(archives) == 1, archives
    version = archives[0].name.split("-")[1]
    # Only what a release publishes: the archive and SHA256SUMS.
    www = tmp_path_factory.mktemp("www")
    shutil.copy(archives[0], www)
    shutil.copy(out / "SHA256SUMS", www)
    return Release(www, www / archives[0].name, version)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve_dir() -> Iterator[Callable[[Path], str]]:
    """`serve_dir(path)` serves path on 127.0.0.1 and returns the base URL; stopped at teardown."""
    servers: list[http.server.ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(5)
