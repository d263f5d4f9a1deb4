"""A wrapped config really works: its server is launched as the client would launch it (the
command line from the edited file), answers `initialize`, and shows up in `km status` under the
name the client gives it."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
from pathlib import Path

from tests.conftest import ProcessReaper
from tests.setup.conftest import Home

TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")
RESPONSE_TIMEOUT_S = 30  # the time server imports the MCP SDK before it answers
SERVER_GRACE_S = "10"  # the server exits on EOF by itself; on a busy machine that takes a while
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "setup-test", "version": "1"}},
}  # fmt: skip


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), "no answer from the wrapped server"
    return proc.stdout.readline()


def test_the_wrapped_server_runs_through_km_and_is_captured(
    home: Home, reaper: ProcessReaper
) -> None:
    config = home.write(".config/Claude/claude_desktop_config.json", json.dumps({
        "mcpServers": {"clock": {"command": TIME_SERVER, "args": ["--local-timezone", "UTC"]}},
    }))  # fmt: skip
    assert home.km("setup", "claude-desktop").returncode == 0
    entry = json.loads(config.read_text())["mcpServers"]["clock"]
    env = {**home.env, "KM_GRACE": SERVER_GRACE_S}
    proc = reaper.popen(
        [entry["command"], *entry["args"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env=env, cwd=home.project,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
    proc.stdin.flush()
    response = json.loads(read_line(proc, RESPONSE_TIMEOUT_S))
    assert response["id"] == 1 and "serverInfo" in response["result"]
    proc.stdin.close()
    assert proc.wait(RESPONSE_TIMEOUT_S) == 0

    status = home.km("status", "--json")
    assert status.returncode == 0, status.stderr
    captured = json.loads(status.stdout)
    assert captured["events_by_server"] == {"clock": 2}, "the request and its response"
