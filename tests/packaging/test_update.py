"""`km update` end to end: version A installed by install.sh from 127.0.0.1, version B on
another loopback release server; a clean update, `--check`, a tampered archive and a server
that goes away mid-download (both refused, the old km still works)."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import Release
from tests.packaging.test_install_sh import MCP_SERVER_TIME, run_install
from tests.packaging.test_upgrade import km, launch_from_config, write_config
from tests.update.conftest import CutOff


def installed(release: Release, serve_dir: Callable[[Path], str], tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    done = run_install(home, base_url=serve_dir(release.directory))
    assert done.returncode == 0, done.stderr
    return home


def update(home: Path, tmp_path: Path, base_url: str, *args: str) -> tuple[int, str, str]:
    link = home / ".local" / "bin" / "km"
    spool = tmp_path / "spool.db"
    done = km(link, home, spool, "update", *args, KM_INSTALL_BASE_URL=base_url)
    return done.returncode, done.stdout, done.stderr


def versions(home: Path) -> list[str]:
    return sorted(p.name for p in (home / ".local" / "lib" / "km").iterdir())


def assert_still_works(home: Path, tmp_path: Path, version: str) -> None:
    link = home / ".local" / "bin" / "km"
    spool = tmp_path / "spool.db"
    assert km(link, home, spool, "--version").stdout == f"km {version}\n"
    args = ["--name", "time", "--", str(MCP_SERVER_TIME)]
    config = write_config(home, {"command": str(link), "args": args})
    assert launch_from_config(config, home, spool)["id"] == 1
    assert versions(home) == [".created-by-installer", version]


def test_check_then_update_switches_to_the_newest_release(
    release: Release, newer_release: Release, serve_dir: Callable[[Path], str], tmp_path: Path
) -> None:
    home = installed(release, serve_dir, tmp_path)
    same = serve_dir(release.directory)
    newer = serve_dir(newer_release.directory)

    code, out, err = update(home, tmp_path, same, "--check")
    assert (code, err) == (0, ""), err
    assert f"km {release.version} is the newest" in out
    code, out, err = update(home, tmp_path, newer, "--check")
    assert (code, err) == (100, ""), err
    assert f"km {newer_release.version} is available" in out and "km update" in out
    assert_still_works(home, tmp_path, release.version)  # --check changes nothing

    code, out, err = update(home, tmp_path, newer)
    assert code == 0, err
    assert "checksum verified" in out and f"-> {newer_release.version}" in out
    assert_still_works(home, tmp_path, newer_release.version)
    link = home / ".local" / "bin" / "km"
    target = home / ".local" / "lib" / "km" / newer_release.version / "km"
    assert link.is_symlink() and link.resolve() == target.resolve()
    code, out, _ = update(home, tmp_path, newer)
    assert code == 0 and "nothing to do" in out


def test_a_tampered_archive_is_refused_and_the_old_km_still_works(
    release: Release, newer_release: Release, serve_dir: Callable[[Path], str], tmp_path: Path
) -> None:
    home = installed(release, serve_dir, tmp_path)
    www = tmp_path / "tampered"
    shutil.copytree(newer_release.directory, www)
    archive = www / newer_release.archive.name
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    code, _, err = update(home, tmp_path, serve_dir(www))
    assert code == 1
    assert err.count("\n") == 1, err
    assert "checksum mismatch" in err and f"km {release.version} is unchanged" in err
    assert "Traceback" not in err
    assert_still_works(home, tmp_path, release.version)


@pytest.fixture
def cut_off_server() -> Iterator[Callable[[Path], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = type("Handler", (CutOff,), {"directory": directory})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_server_that_goes_away_mid_download_leaves_the_old_km_working(
    release: Release,
    newer_release: Release,
    serve_dir: Callable[[Path], str],
    cut_off_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    home = installed(release, serve_dir, tmp_path)
    code, _, err = update(home, tmp_path, cut_off_server(newer_release.directory))
    assert code == 1
    assert err.count("\n") == 1, err
    assert "cut off" in err and f"km {release.version} is unchanged" in err
    assert_still_works(home, tmp_path, release.version)


def test_an_unreachable_release_server_is_one_line(
    release: Release, serve_dir: Callable[[Path], str], tmp_path: Path
) -> None:
    home = installed(release, serve_dir, tmp_path)
    (tmp_path / "empty").mkdir()
    code, _, err = update(home, tmp_path, serve_dir(tmp_path / "empty"), "--check")
    assert code == 1 and err.count("\n") == 1, err
    assert "cannot download" in err and "SHA256SUMS: HTTP 404" in err
    assert_still_works(home, tmp_path, release.version)
