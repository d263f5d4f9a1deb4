"""Every km command that can fail on the environment exits with one actionable line and no
traceback, in the venv and in the self-contained build (PyInstaller's `Failed to execute
script` must never show): a port in use, an unreadable file, a missing database, an unreachable
PostgreSQL, an unreadable spool or config."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.packaging.conftest import Release

VENV_KM = Path(sys.executable).parent / "km"
TIMEOUT_S = 60
PG_URL = os.environ.get("KM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    args: tuple[str, ...]
    expected: str  # in the one line km prints
    env: tuple[tuple[str, str], ...] = ()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def postgres_reachable() -> bool:
    parts = urlsplit(PG_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def cases(tmp_path: Path, busy: int) -> list[Case]:
    a_dir = tmp_path / "a-directory"
    a_dir.mkdir()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database\n" * 200)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    sqlite = f"sqlite:///{tmp_path / 'server.db'}"
    found = [
        Case("port in use", ("serve", "--port", str(busy), "--database-url", sqlite),
             f"cannot listen on 127.0.0.1:{busy}: the port is in use"),
        Case("bad --host", ("serve", "--host", "no-such-host.invalid", "--port", "0",
                            "--database-url", sqlite), "no such address"),
        Case("unreadable client config", ("setup", "--config", str(a_dir)), "is a directory"),
        Case("missing client config", ("setup", "--config", str(tmp_path / "nope.json")),
             "no such file"),
        Case("sqlite under a file", ("serve", "keys", "list", "--database-url",
                                     f"sqlite:///{a_file}/server.db"), "cannot create"),
        Case("unreachable PostgreSQL",
             ("serve", "--port", "0", "--database-url",
              f"postgresql://postgres@127.0.0.1:{closed_port()}/x"), "cannot connect"),
        Case("damaged spool", ("status", "--spool", str(garbage)), "damaged or not a km spool"),
        Case("spool is a directory", ("status", "--spool", str(a_dir)), f"spool {a_dir}"),
        Case("unreadable km config", ("status",), "cannot read it",
             (("KM_CONFIG", str(a_dir)),)),
        Case("invalid km config", ("serve", "keys", "list"), "not valid TOML",
             (("KM_CONFIG", str(garbage)),)),
    ]  # fmt: skip
    if postgres_reachable():
        parts = urlsplit(PG_URL)
        missing = parts._replace(path="/km_no_such_database").geturl()
        args = ("serve", "keys", "list", "--database-url", missing)
        found.append(Case("missing PostgreSQL database", args, "does not exist"))
    return found


def check_all(km: Path, tmp_path: Path, busy: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    failures = []
    for case in cases(tmp_path, busy):
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "KM_CONFIG": str(home / "c.toml")}
        env.update(case.env)
        done = subprocess.run(
            [str(km), *case.args], env=env, capture_output=True, text=True,
            timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        lines = done.stderr.splitlines()
        ok = (
            done.returncode != 0
            and done.stdout == ""
            and len(lines) == 1
            and lines[0].startswith("km")
            and case.expected in lines[0]
            and "Traceback" not in done.stderr
            and "Failed to execute" not in done.stderr
        )
        if not ok:
            failures.append(f"{case.name}: exit {done.returncode}, stderr {done.stderr[-600:]!r}")
    assert not failures, "\n".join(failures)


def test_environment_failures_in_the_venv(tmp_path: Path, busy_port: int) -> None:
    check_all(VENV_KM, tmp_path, busy_port)


def test_environment_failures_in_the_self_contained_build(
    release: Release, tmp_path: Path, busy_port: int
) -> None:
    check_all(release.km, tmp_path, busy_port)
