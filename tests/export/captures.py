"""Real captures for the export and replay tests: a real `km` process in front of a real MCP
server, fed JSON-RPC messages; each request waits for its reply (server notifications met on
the way are skipped; a roots/list request is answered with no roots, as a client would)."""

from __future__ import annotations

import os
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

TIME_SERVER = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
PEERS_BIN = Path(__file__).resolve().parents[1] / "peers" / "node_modules" / ".bin"
EVERYTHING = [str(PEERS_BIN / "mcp-server-everything"), "stdio"]
REPLY_TIMEOUT_S = 60.0  # generous: the machine is shared

INIT: dict[str, Any] = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "km-tests", "version": "1"}},
}  # fmt: skip
INITIALIZED: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def call(rpc_id: int, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None
         ) -> dict[str, Any]:  # fmt: skip
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call", "params": params}


def km_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KM_SPOOL=str(tmp_path / "spool.db"), KM_CONFIG=str(tmp_path / "none.toml"))
    env["KM_GRACE"] = "15"  # an upper bound for the server's own exit, not a wait
    for name in ("KM_API_URL", "KM_API_KEY", "KM_NAME", "KM_OTLP_ENDPOINT"):
        env.pop(name, None)
    return env


def capture(env: dict[str, str], name: str, server: list[str], messages: list[dict[str, Any]],
            exit_codes: tuple[int, ...] = (0,)) -> list[dict[str, Any]]:  # fmt: skip
    """Run `km --name NAME SERVER...`, send `messages`, return the replies it got. km exits
    with the server's status (143: km had to SIGTERM a server that outlived its stdin)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "km", "--name", name, *server],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    replies: list[dict[str, Any]] = []
    buffer = b""
    try:
        for m in messages:
            proc.stdin.write(orjson.dumps(m) + b"\n")
            proc.stdin.flush()
            if "id" not in m:
                continue
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            while True:
                while b"\n" not in buffer:
                    left = deadline - time.monotonic()
                    assert left > 0, f"no reply to {m}"
                    ready, _, _ = select.select([proc.stdout], [], [], left)
                    if ready:
                        chunk = os.read(proc.stdout.fileno(), 65536)
                        assert chunk, f"km ended before replying to {m}"
                        buffer += chunk
                line, buffer = buffer.split(b"\n", 1)
                doc = orjson.loads(line)
                if doc.get("method") == "roots/list" and "id" in doc:  # as a client would
                    roots = {"jsonrpc": "2.0", "id": doc["id"], "result": {"roots": []}}
                    proc.stdin.write(orjson.dumps(roots) + b"\n")
                    proc.stdin.flush()
                if "method" not in doc and doc.get("id") == m["id"]:
                    replies.append(doc)
                    break
        proc.stdin.close()
        code = proc.wait(timeout=60)
        assert code in exit_codes, f"km exited {code}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
    settled(Path(env["KM_SPOOL"]), name)
    return replies


def settled(spool: Path, name: str) -> None:
    """Wait until the capture process (which outlives km's exit by its drain) recorded the
    end of `name`'s session: after that the spool holds all of it."""
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)
            try:
                row = conn.execute(
                    "SELECT count(*) FROM sessions WHERE server = ? AND ended_ns IS NULL", [name]
                ).fetchone()
                ended = conn.execute(
                    "SELECT count(*) FROM sessions WHERE server = ? AND ended_ns IS NOT NULL",
                    [name],
                ).fetchone()
            finally:
                conn.close()
            if row[0] == 0 and ended[0] > 0:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the capture of {name} never ended")


def time_session(env: dict[str, str], name: str = "clock") -> list[dict[str, Any]]:
    return capture(env, name, TIME_SERVER, [
        INIT, INITIALIZED,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        call(3, "get_current_time", {"timezone": "UTC"}),
        call(4, "convert_time", {"source_timezone": "UTC", "time": "12:00",
                                 "target_timezone": "Asia/Tokyo"}),
        call(5, "get_current_time", {"timezone": "Not/AZone"}),
    ])  # fmt: skip
