"""An upgrade keeps wrapped clients working: install version A with install.sh from 127.0.0.1,
wrap a client config with `km setup`, upgrade to version B, start the server the config names
(a real MCP server answering initialize). And configs an earlier km wrapped with the versioned
path are reported by `km doctor` and repaired by `km setup`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.packaging.conftest import Release
from tests.packaging.test_install_sh import (
    INITIALIZE,
    MCP_SERVER_TIME,
    SESSION_TIMEOUT_S,
    km_env,
    run_install,
)

CURSOR = Path(".cursor") / "mcp.json"
# How long km lets the server exit by itself after its stdin closes: an upper bound, so a busy
# machine (mcp-server-time takes a while to exit under load) never turns a clean exit into 143.
GRACE_S = "15"


def env_of(home: Path, spool: Path, **extra: str) -> dict[str, str]:
    return {**km_env(spool, home), "KM_GRACE": GRACE_S, **extra}


def write_config(home: Path, server: dict[str, object]) -> Path:
    path = home / CURSOR
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": {"time": server}}, indent=2) + "\n")
    return path


def launch_from_config(config: Path, home: Path, spool: Path) -> dict[str, object]:
    """Start the `time` server exactly as the client would (command + args from the config,
    no shell) and return its answer to initialize."""
    entry = json.loads(config.read_text())["mcpServers"]["time"]
    proc = subprocess.Popen(
        [entry["command"], *entry.get("args", [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_of(home, spool),
    )
    with proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
        proc.stdin.flush()
        answer: dict[str, object] = json.loads(proc.stdout.readline())
        proc.stdin.close()
        assert proc.wait(SESSION_TIMEOUT_S) == 0
    return answer


def km(
    link: Path, home: Path, spool: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(link), *args],
        env=env_of(home, spool, **env),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT_S,
        check=False,
    )


def test_setup_writes_the_stable_link_and_an_upgrade_keeps_the_client_working(
    release: Release,
    newer_release: Release,
    serve_dir: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    spool = tmp_path / "spool.db"
    assert run_install(home, base_url=serve_dir(release.directory)).returncode == 0
    link = home / ".local" / "bin" / "km"
    config = write_config(home, {"command": str(MCP_SERVER_TIME)})

    done = km(link, home, spool, "setup", "cursor")
    assert done.returncode == 0, done.stderr
    entry = json.loads(config.read_text())["mcpServers"]["time"]
    assert entry["command"] == str(link)  # not .../lib/km/<version>/km
    assert entry["args"] == ["--name", "time", "--", str(MCP_SERVER_TIME)]

    done = run_install(home, base_url=serve_dir(newer_release.directory))
    assert done.returncode == 0, done.stderr
    lib = home / ".local" / "lib" / "km"
    assert not (lib / release.version).exists()
    answer = launch_from_config(config, home, spool)
    assert answer["id"] == 1 and "result" in answer
    assert km(link, home, spool, "--version").stdout == f"km {newer_release.version}\n"
    doctor = json.loads(km(link, home, spool, "doctor", "--json").stdout)
    cursor = {c["name"]: c for c in doctor["checks"]}["Cursor"]
    assert cursor["status"] == "ok", cursor


def test_configs_wrapped_with_a_versioned_path_are_reported_and_repaired(
    release: Release,
    newer_release: Release,
    serve_dir: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    spool = tmp_path / "spool.db"
    assert run_install(home, base_url=serve_dir(release.directory)).returncode == 0
    link = home / ".local" / "bin" / "km"
    versioned = home / ".local" / "lib" / "km" / release.version / "km"
    args = ["--name", "time", "--", str(MCP_SERVER_TIME)]
    config = write_config(home, {"command": str(versioned), "args": args})  # an earlier km's

    def cursor_check() -> dict[str, str]:
        doctor = json.loads(km(link, home, spool, "doctor", "--json").stdout)
        check: dict[str, str] = {c["name"]: c for c in doctor["checks"]}["Cursor"]
        return check

    check = cursor_check()
    assert check["status"] == "warn" and "next upgrade removes" in check["detail"], check
    assert check["fix"] == "km setup cursor"

    assert run_install(home, base_url=serve_dir(newer_release.directory)).returncode == 0
    check = cursor_check()
    assert check["status"] == "fail" and "versioned path" in check["detail"], check
    assert check["fix"] == "km setup cursor"

    done = km(link, home, spool, "setup", "cursor")
    assert done.returncode == 0, done.stderr
    assert f"repaired: time [was {versioned}]" in done.stdout
    entry = json.loads(config.read_text())["mcpServers"]["time"]
    assert entry == {"command": str(link), "args": args}
    assert launch_from_config(config, home, spool)["id"] == 1
    assert cursor_check()["status"] == "ok"
    # The original (an earlier km's wrapping) is what --undo gives back, then unwrapped.
    done = km(link, home, spool, "setup", "--undo", "cursor")
    assert done.returncode == 0, done.stderr
    entry = json.loads(config.read_text())["mcpServers"]["time"]
    assert entry["command"] == str(MCP_SERVER_TIME) and not entry.get("args"), entry
