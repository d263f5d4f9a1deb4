"""The server's SQLite database is private: a real `km serve` creates its directory 0700 and
the database, -wal and -shm files 0600 whatever the umask, and warns about an existing
database that other users can read."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.server.serve_process import KmServe

COMMAND_TIMEOUT_S = 60.0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _permissive_umask() -> None:
    os.umask(0o022)  # the common default: files 0644, directories 0755


def test_a_new_database_and_its_directory_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "km"
    db = directory / "server.db"
    with KmServe(f"sqlite://{db}", preexec_fn=_permissive_umask) as server:
        assert server.get("/ready")[0] == 200
        assert _mode(directory) == 0o700
        for name in ("server.db", "server.db-wal", "server.db-shm"):
            assert (directory / name).exists(), name
            assert _mode(directory / name) == 0o600, name
        assert "readable by other users" not in server.stderr_so_far()


def test_an_existing_readable_database_is_warned_about(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    first = subprocess.run(
        [sys.executable, "-m", "km.server", "accounts", "list", "--database-url", str(db)],
        capture_output=True, timeout=COMMAND_TIMEOUT_S, preexec_fn=_permissive_umask,
    )  # fmt: skip
    assert first.returncode == 0 and b"readable" not in first.stderr
    db.chmod(0o644)
    second = subprocess.run(
        [sys.executable, "-m", "km.server", "accounts", "list", "--database-url", str(db)],
        capture_output=True, timeout=COMMAND_TIMEOUT_S,
    )  # fmt: skip
    assert second.returncode == 0
    err = second.stderr.decode()
    assert "readable by other users (server.db mode 644" in err and f"chmod 600 {db}*" in err
    assert err.count("\n") == 1  # one line, no traceback
