"""A planted symlink or a foreign spool is refused; a spool or config file open to others is
made private; `km doctor` checks both modes. Real km processes, real files (the tests run as
root here, so a file of another user is made with chown)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from km.private import PrivateFileError, check_directory, open_private, read_private
from tests.conftest import KM

MESSAGE = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def km_lines(stderr: bytes) -> list[str]:
    return [x for x in stderr.decode().splitlines() if x.startswith("km:")]


def run_km(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*KM, "cat"], input=MESSAGE, capture_output=True, env=env, timeout=60)


@needs_root
def test_a_symlink_at_the_spool_path_is_never_followed(
    km_env: dict[str, str], spool_path: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    victim.write_bytes(b"")
    os.chown(victim, NOBODY, NOBODY)
    victim.chmod(0o666)
    spool_path.symlink_to(victim)
    result = run_km(km_env)
    assert result.returncode == 0 and result.stdout == MESSAGE
    lines = km_lines(result.stderr)
    assert len(lines) == 1 and "symbolic link" in lines[0], result.stderr
    assert victim.read_bytes() == b""
    assert not Path(str(victim) + "-wal").exists()
    status = subprocess.run([*KM, "status"], capture_output=True, env=km_env, timeout=60)
    assert status.returncode != 0 and b"symbolic link" in status.stderr


@needs_root
def test_a_spool_of_another_user_is_refused(km_env: dict[str, str], spool_path: Path) -> None:
    spool_path.write_bytes(b"")
    os.chown(spool_path, NOBODY, NOBODY)
    spool_path.chmod(0o666)
    result = run_km(km_env)
    assert result.returncode == 0 and result.stdout == MESSAGE
    lines = km_lines(result.stderr)
    assert len(lines) == 1 and "not to you" in lines[0], result.stderr
    assert spool_path.read_bytes() == b""


def test_an_own_spool_open_to_others_is_made_private(
    km_env: dict[str, str], spool_path: Path
) -> None:
    assert run_km(km_env).returncode == 0
    spool_path.chmod(0o644)
    result = run_km(km_env)
    assert result.returncode == 0 and result.stdout == MESSAGE
    assert stat.S_IMODE(spool_path.stat().st_mode) == 0o600
    lines = km_lines(result.stderr)
    assert len(lines) == 1 and "made it private" in lines[0], result.stderr


def test_a_spool_in_a_shared_sticky_directory_is_refused(
    km_env: dict[str, str], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    km_env["KM_SPOOL"] = str(shared / "spool.db")
    result = run_km(km_env)
    assert result.returncode == 0 and result.stdout == MESSAGE
    lines = km_lines(result.stderr)
    assert len(lines) == 1 and "writable by other users" in lines[0], result.stderr
    assert not (shared / "spool.db").exists()


def test_own_directory_writable_by_others_loses_that_permission(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    own.chmod(0o777)
    notes = check_directory(str(own))
    assert notes and stat.S_IMODE(own.stat().st_mode) == 0o755


def test_open_private_refuses_links_and_creates_0600(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(PrivateFileError, match="symbolic link"):
        open_private(str(link), os.O_RDONLY)
    old = os.umask(0)
    try:
        fd, notes = open_private(str(tmp_path / "new"), os.O_RDWR, create=True)
    finally:
        os.umask(old)
    os.close(fd)
    assert notes == [] and stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o600


def test_a_config_file_link_is_ignored_and_an_open_one_made_private(
    km_env: dict[str, str], tmp_path: Path
) -> None:
    real = tmp_path / "real.toml"
    real.write_text('name = "from-config"\n')
    real.chmod(0o600)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    km_env["KM_CONFIG"] = str(link)
    result = run_km(km_env)
    assert result.returncode == 0 and result.stdout == MESSAGE
    lines = km_lines(result.stderr)
    assert len(lines) == 1 and "symbolic link" in lines[0], result.stderr

    real.chmod(0o644)
    data, note = read_private(str(real))
    assert data.startswith(b"name") and note is not None and "made it private" in note
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_doctor_checks_the_modes(km_env: dict[str, str], spool_path: Path, tmp_path: Path) -> None:
    assert run_km(km_env).returncode == 0
    config = tmp_path / "config.toml"
    config.write_text('name = "x"\n')
    config.chmod(0o644)
    spool_path.chmod(0o640)
    km_env["KM_CONFIG"] = str(config)
    km_env["PATH"] = os.environ.get("PATH", "")
    result = subprocess.run([*KM, "doctor", "--json"], capture_output=True, env=km_env, timeout=60)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["config file"]["status"] == "fail", checks["config file"]
    assert "chmod 600" in checks["config file"]["fix"]
    assert checks["spool file"]["status"] == "fail"
    assert "0640" in checks["spool file"]["detail"]


def test_doctor_checks_the_spool_directory(
    km_env: dict[str, str], spool_path: Path, tmp_path: Path
) -> None:
    assert run_km(km_env).returncode == 0
    spool_path.parent.chmod(0o777)
    km_env["KM_CONFIG"] = str(tmp_path / "none.toml")
    result = subprocess.run([*KM, "doctor", "--json"], capture_output=True, env=km_env, timeout=60)
    spool_path.parent.chmod(0o700)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["spool file"]["status"] == "fail"
    assert "writable by other users" in checks["spool file"]["detail"]
    assert "chmod go-w" in checks["spool file"]["fix"]
