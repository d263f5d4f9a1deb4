"""install.sh end to end: the real Linux build served from 127.0.0.1, an empty HOME, a minimal
PATH; the installed km runs a real MCP server; tampering, upgrade, uninstall and the fallback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT, Release

INSTALL_SH = ROOT / "install.sh"
MCP_SERVER_TIME = Path(sys.executable).parent / "mcp-server-time"
MINIMAL_PATH = "/usr/bin:/bin"
INSTALL_TIMEOUT_S = 120
SESSION_TIMEOUT_S = 60
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "install-test", "version": "1"},
    },
}


def shell() -> str:
    return shutil.which("dash") or "/bin/sh"  # dash when present: the strictest POSIX sh here


def run_install(
    home: Path, *args: str, base_url: str = "", path: str = MINIMAL_PATH, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {"HOME": str(home), "PATH": path, **env}
    if base_url:
        environment["KM_INSTALL_BASE_URL"] = base_url
    return subprocess.run(
        [shell(), str(INSTALL_SH), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def km_env(spool: Path, home: Path) -> dict[str, str]:
    # KM_GRACE is an upper bound for the server's own exit, not a wait: mcp-server-time can
    # take a second to exit under load, and must not be SIGTERMed into exit 143.
    return {"HOME": str(home), "PATH": MINIMAL_PATH, "KM_SPOOL": str(spool), "KM_GRACE": "15"}


def run_session(km: Path, spool: Path, home: Path) -> dict[str, object]:
    """initialize through the installed km to mcp-server-time; return the server's answer."""
    proc = subprocess.Popen(
        [str(km), "--name", "time", str(MCP_SERVER_TIME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=km_env(spool, home),
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
        proc.stdin.flush()
        answer: dict[str, object] = json.loads(proc.stdout.readline())
        proc.stdin.close()
        assert proc.wait(SESSION_TIMEOUT_S) == 0
        return answer
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def status(km: Path, spool: Path, home: Path) -> dict[str, object]:
    done = subprocess.run(
        [str(km), "status", "--json"],
        env=km_env(spool, home),
        capture_output=True,
        timeout=SESSION_TIMEOUT_S,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_install_run_upgrade_uninstall(
    release: Release, serve_dir: Callable[[Path], str], home: Path, tmp_path: Path
) -> None:
    url = serve_dir(release.directory)
    before = tree(home)

    done = run_install(home, base_url=url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert f"installed km {release.version}" in done.stdout
    assert "is not on your PATH" in done.stdout  # ~/.local/bin is not in MINIMAL_PATH
    assert "\033[" not in done.stdout  # not a terminal: no colour
    link = home / ".local" / "bin" / "km"
    target = home / ".local" / "lib" / "km" / release.version / "km"
    assert link.is_symlink() and link.resolve() == target.resolve()

    spool = tmp_path / "spool.db"  # outside HOME: the tree comparison is about the install
    answer = run_session(link, spool, home)
    assert answer["id"] == 1 and "result" in answer
    shown = status(link, spool, home)
    assert isinstance(shown["events_total"], int) and shown["events_total"] >= 2
    assert shown["events_by_server"] == {"time": shown["events_total"]}

    # An older version installed before: the re-run switches to the new one and removes it.
    lib = home / ".local" / "lib" / "km"
    (lib / release.version).rename(lib / "0.0.1")
    link.unlink()
    link.symlink_to(lib / "0.0.1" / "km")
    done = run_install(home, "--version", release.version, base_url=url)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in lib.iterdir()) == [".created-by-installer", release.version]
    assert link.resolve() == target.resolve()
    # The same version again: a fresh copy in place, nothing left over.
    inode = target.stat().st_ino
    done = run_install(home, base_url=url)
    assert done.returncode == 0, done.stderr
    assert target.stat().st_ino != inode
    assert sorted(p.name for p in lib.iterdir()) == [".created-by-installer", release.version]
    assert sorted(p.name for p in link.parent.iterdir()) == ["km"]
    assert run_session(link, spool, home)["id"] == 1

    done = run_install(home, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert tree(home) == before
    done = run_install(home, "--uninstall")
    assert done.returncode == 0 and "nothing to remove" in done.stdout


def test_tampered_archive_is_refused(
    release: Release, serve_dir: Callable[[Path], str], home: Path, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    shutil.copytree(release.directory, www)
    archive = www / release.archive.name
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    done = run_install(home, base_url=serve_dir(www))
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "checksum mismatch" in done.stderr and "refusing to install" in done.stderr
    assert tree(home) == []


def test_unknown_version_and_unreachable_release_fail_in_one_line(
    release: Release, serve_dir: Callable[[Path], str], home: Path
) -> None:
    done = run_install(home, "--version", "9.9.9", base_url=serve_dir(release.directory))
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "no km 9.9.9 build for linux-" in done.stderr
    done = run_install(home, base_url=serve_dir(release.directory) + "/nothing-here")
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "cannot download" in done.stderr
    assert tree(home) == []


def make_shims(where: Path, **scripts: str) -> str:
    where.mkdir()
    for name, body in scripts.items():
        shim = where / name
        shim.write_text("#!/bin/sh\n" + body)
        shim.chmod(0o755)
    return f"{where}:{MINIMAL_PATH}"


UNAME_RISCV_BSD = 'case "$1" in -m) echo riscv64 ;; *) echo FreeBSD ;; esac\n'


def test_unsupported_platform_without_pipx_or_uv_says_what_to_do(
    home: Path, tmp_path: Path
) -> None:
    path = make_shims(tmp_path / "shims", uname=UNAME_RISCV_BSD)
    done = run_install(home, path=path)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "no prebuilt km for FreeBSD/riscv64" in done.stderr
    assert "pipx install kilometers" in done.stderr
    assert tree(home) == []


def test_unsupported_platform_falls_back_to_pipx(home: Path, tmp_path: Path) -> None:
    calls = tmp_path / "pipx-calls"
    path = make_shims(
        tmp_path / "shims",
        uname=UNAME_RISCV_BSD,
        pipx=f'echo "$@" >> "{calls}"\n',
    )
    done = run_install(home, "--version", "0.1.0", path=path)
    assert done.returncode == 0, done.stderr
    assert "installing the Python package with pipx" in done.stdout
    assert calls.read_text() == "install --force kilometers==0.1.0\n"


def test_install_sh_is_posix_sh() -> None:
    for sh in ("sh", "dash"):
        if shutil.which(sh):
            subprocess.run([sh, "-n", str(INSTALL_SH)], check=True, timeout=30)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    subprocess.run(["shellcheck", "-s", "sh", str(INSTALL_SH)], check=True, timeout=60)


def test_install_ps1_parses() -> None:
    pwsh = shutil.which("pwsh") or shutil.which("powershell")
    if pwsh is None:
        pytest.skip("no PowerShell here: install.ps1 runs in the release workflow on Windows")
    script = (
        "$errors = $null; [System.Management.Automation.Language.Parser]::ParseFile("
        f"'{ROOT / 'install.ps1'}', [ref]$null, [ref]$errors) | Out-Null; "
        "if ($errors) { $errors | ForEach-Object { Write-Error $_ }; exit 1 }"
    )
    subprocess.run([pwsh, "-NoProfile", "-Command", script], check=True, timeout=60)


def test_uninstall_keeps_what_it_did_not_install(home: Path) -> None:
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    mine = bin_dir / "km"
    mine.write_text("#!/bin/sh\n")
    done = run_install(home, "--uninstall")
    assert done.returncode == 0
    assert mine.exists()
    assert os.listdir(bin_dir) == ["km"]
