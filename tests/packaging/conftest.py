"""The real self-contained build, made once per test session by packaging/build.sh, and a
loopback HTTP server that serves it the way a GitHub release does."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
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
    km: Path  # the unpacked build's km, to run without installing it


def newer_version(version: str) -> str:
    """`version` with its last number one higher: 0.1.0 -> 0.1.1."""
    head, _, last = version.rpartition(".")
    digits = "".join(ch for ch in last if ch.isdigit()) or "0"
    return f"{head}.{int(digits) + 1}" if head else str(int(digits) + 1)


def build_release(
    factory: pytest.TempPathFactory, root: Path, version: str | None = None
) -> Release:
    """packaging/build.sh of the tree at `root`, served from a directory holding only what a
    release publishes (the archive and SHA256SUMS)."""
    out = factory.mktemp("release")
    started = time.monotonic()
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(root / "packaging" / "build.sh"), "--out", str(out), "--no-smoke"],
        cwd=root,
        env=env,
        capture_output=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    print(f"packaging/build.sh took {time.monotonic() - started:.1f} s")
    archives = sorted(out.glob("km-*-linux-*.tar.gz"))
    assert len(archives) == 1, archives
    found = archives[0].name.split("-")[1]
    assert version is None or found == version, (found, version)
    www = factory.mktemp("www")
    shutil.copy(archives[0], www)
    shutil.copy(out / "SHA256SUMS", www)
    unpacked = out / archives[0].name.removesuffix(".tar.gz") / "km"
    return Release(www, www / archives[0].name, found, unpacked)


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    if not shutil.which("tar") or os.uname().sysname != "Linux":
        pytest.skip("the release build is tested on Linux")
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.fail("PyInstaller is missing: ./dev setup installs it (the test extra)")
    return build_release(tmp_path_factory, ROOT)


@pytest.fixture(scope="session")
def newer_release(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Release:
    """The same km built as the next version (a copy of the tree with `__version__` bumped),
    to upgrade to: install.sh and `km update` move from `release` to this."""
    src = tmp_path_factory.mktemp("src-newer")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("km", "packaging"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    version = newer_version(release.version)
    init = src / "km" / "__init__.py"
    text = init.read_text()
    assert f'__version__ = "{release.version}"' in text
    init.write_text(text.replace(f'"{release.version}"', f'"{version}"'))
    return build_release(tmp_path_factory, src, version)


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
