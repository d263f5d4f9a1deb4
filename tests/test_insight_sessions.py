"""The insight core through km with real MCP servers and the official SDK client: the stored
inventory equals what the SDK's `list_tools` returned; a server that changes its tool between
sessions is reported (drift with the diff, poisoning) until approved, and again after a
further change."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from km.insight.definitions import make_definition
from km.spool.tokens import fill_tokens

ROOT = Path(__file__).resolve().parent
BIN = ROOT / "peers" / "node_modules" / ".bin"
DRIFT = ROOT / "peers" / "drift_server.py"


async def list_and_call(command: list[str], env: dict[str, str], call: Any = None) -> list[Any]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        tools = await client.list_tools()
        if call is not None:
            await client.call_tool(*call)
        return [t.model_dump(by_alias=True, exclude_none=True) for t in tools.tools]


CAPTURE_DONE_S = 30.0  # longest wait for a session's capture process to record its end


def through_km(name: str, command: list[str], env: dict[str, str], call: Any = None) -> list[Any]:
    """One SDK session through km; returns once km's capture process recorded its end (km may
    exit before its capture process is done: it does not hold the client up for the spool)."""
    spool = Path(env["KM_SPOOL"])
    before = ended_sessions(spool)
    km = [sys.executable, "-m", "km", "--name", name, *command]
    tools = asyncio.run(list_and_call(km, env, call))
    deadline = time.monotonic() + CAPTURE_DONE_S
    while ended_sessions(spool) <= before:
        assert time.monotonic() < deadline, "the capture process never recorded the session end"
        time.sleep(0.05)
    return tools


def ended_sessions(spool: Path) -> int:
    if not spool.exists():
        return 0
    try:
        return int(stored(spool, "SELECT count(*) FROM sessions WHERE ended_ns IS NOT NULL")[0][0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def km(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "km", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stored(spool: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(spool)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def tools_view(env: dict[str, str], server: str) -> dict[str, Any]:
    done = km("tools", server, "--json", env=env)
    assert done.returncode == 0, done.stderr
    (view,) = json.loads(done.stdout)["servers"]
    assert isinstance(view, dict)
    return view


SERVERS = {
    "everything": [str(BIN / "mcp-server-everything"), "stdio"],
    "filesystem": [str(BIN / "mcp-server-filesystem"), "{tmp}"],
    "memory": [str(BIN / "mcp-server-memory")],
    "time": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"],
}


@pytest.mark.parametrize("name", list(SERVERS))
def test_stored_inventory_equals_the_sdks_list_tools(
    name: str, km_env: dict[str, str], spool_path: Path, tmp_path: Path
) -> None:
    command = [part.replace("{tmp}", str(tmp_path)) for part in SERVERS[name]]
    if command[0].startswith(str(BIN)) and not Path(command[0]).exists():
        pytest.fail("npm test peers missing: run ./dev setup")
    env = {**km_env, "MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}
    env["KM_MAX_PAYLOAD"] = "1k"  # tools/list results are kept whole whatever this says
    sdk_tools = through_km(name, command, env)
    assert sdk_tools
    rows = stored(
        spool_path,
        "SELECT i.name, i.hash, d.definition FROM inventory i JOIN definitions d USING"
        " (server, info_name, kind, name, hash) WHERE i.server = ? AND i.kind = 'tools/list'",
        name,
    )
    by_name = {n: (h, json.loads(text)) for n, h, text in rows}
    assert sorted(by_name) == sorted(t["name"] for t in sdk_tools)
    for tool in sdk_tools:
        expected = make_definition(tool)
        got_hash, got_doc = by_name[tool["name"]]
        assert got_doc == dict(expected.doc), tool["name"]
        assert got_hash == expected.hash, tool["name"]
    (listing,) = stored(
        spool_path,
        "SELECT truncated, length(payload) FROM events WHERE server = ? AND method = 'tools/list'"
        " AND kind = 'response'",
        name,
    )
    assert listing[0] == 0
    view = tools_view(env, name)
    assert view["tokens"] > 0 and all(t["tokens"] > 0 for t in view["tools"])
    assert not [f for f in view["poisoning"] if f["severity"] in ("medium", "high", "critical")]
    assert view["drift"] == []


def run_drift(env: dict[str, str], variant: str, version: str = "1.0.0") -> None:
    session_env = {**env, "DRIFT_VARIANT": variant, "DRIFT_VERSION": version}
    through_km("drift", [sys.executable, str(DRIFT)], session_env, ("add", {"a": 1, "b": 2}))


def test_drift_is_reported_until_approved_and_again_after_a_further_change(
    km_env: dict[str, str], spool_path: Path
) -> None:
    run_drift(km_env, "benign")
    view = tools_view(km_env, "drift")
    assert (view["info_name"], view["info_version"]) == ("drift-server", "1.0.0")
    assert [t["name"] for t in view["tools"]] == ["add"]
    assert view["drift"] == [] and view["changes"] == []
    assert not [f for f in view["poisoning"] if f["severity"] in ("high", "critical")]

    run_drift(km_env, "poisoned")  # the rug pull: same version, new description
    view = tools_view(km_env, "drift")
    (drift,) = view["drift"]
    assert (drift["tool"], drift["severity"], drift["kind"]) == ("add", "high", "drift")
    (change,) = view["changes"]
    assert (change["change"], change["fields"]) == ("changed", "description")
    assert "+<IMPORTANT>Before using this tool" in change["diff"]
    assert change["old_version"] == change["new_version"] == "1.0.0"
    assert any(f["severity"] in ("high", "critical") for f in view["poisoning"])
    kinds = {row[0] for row in stored(spool_path, "SELECT kind FROM findings")}
    assert {"drift", "poisoning"} <= kinds
    (rug,) = stored(spool_path, "SELECT rule, severity FROM findings WHERE kind = 'drift'")
    assert rug == ("D101", "high")
    status = km("status", env=km_env)
    assert "need attention" in status.stdout

    approved = km("tools", "approve", "drift", env=km_env)
    assert approved.returncode == 0, approved.stderr
    assert "approved 1 definition" in approved.stdout
    assert tools_view(km_env, "drift")["drift"] == []

    run_drift(km_env, "poisoned")  # the same definition again: still approved
    assert tools_view(km_env, "drift")["drift"] == []

    run_drift(km_env, "poisoned-again", "1.1.0")  # a further change, with a new version
    view = tools_view(km_env, "drift")
    (drift,) = view["drift"]
    assert (drift["rule"], drift["severity"], drift["tool"]) == ("D106", "medium", "add")
    assert "approved" in drift["message"]
    assert view["changes"][-1]["old_version"] == "1.0.0"
    assert view["changes"][-1]["new_version"] == "1.1.0"

    table = km("tools", "drift", env={**km_env, "COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "drift-server" in table.stdout and "changed" in table.stdout
    assert "\x1b" not in table.stdout  # not a terminal: no escapes, captured text escaped


def test_approve_with_nothing_captured_is_a_clear_error(km_env: dict[str, str]) -> None:
    done = km("tools", "approve", "nothing", env=km_env)
    assert done.returncode != 0 and "nothing captured" in done.stderr
    assert done.stderr.count("\n") == 1
    assert not os.path.exists(km_env["KM_SPOOL"])


def test_portable_relay_stores_the_same_insight(km_env: dict[str, str], spool_path: Path) -> None:
    env = {**km_env, "KM_RELAY": "threads"}
    through_km("time", SERVERS["time"], env, ("get_current_time", {"timezone": "UTC"}))
    fill_tokens(str(spool_path))  # what a reader of the spool does first (km/spool/tokens.py)
    calls = stored(
        spool_path,
        "SELECT kind, tool, status, risk IS NOT NULL, tokens IS NOT NULL FROM events"
        " WHERE method = 'tools/call' ORDER BY seq",
    )
    assert calls == [
        ("request", "get_current_time", None, 1, 1),
        ("response", "get_current_time", "ok", 1, 1),
    ]
    names = stored(spool_path, "SELECT name FROM inventory WHERE server = 'time' ORDER BY name")
    assert names == [("convert_time",), ("get_current_time",)]


BIG_SERVER = r"""
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg["method"] == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "big", "version": "1"}}
    else:
        result = {"tools": [{"name": f"t{i}", "description": "word " * 250_000,
                             "inputSchema": {"type": "object"}} for i in range(5)]}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\n")
    sys.stdout.flush()
"""


def test_a_listing_bigger_than_the_capture_buffers_is_kept_whole(
    km_env: dict[str, str], spool_path: Path
) -> None:
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "km", "--name", "big", sys.executable, "-c", BIG_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**km_env, "KM_QUEUE_MAX_BYTES": "1M"},
    )
    assert proc.stdin is not None and proc.stdout is not None
    replies = []
    for message in lines:
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        proc.stdin.flush()
        replies.append(proc.stdout.readline())
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    proc.stdout.close()
    assert len(replies[1]) > 6_000_000  # 5 descriptions of 1.25 MB, forwarded whole
    deadline = time.monotonic() + CAPTURE_DONE_S
    while ended_sessions(spool_path) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ((truncated, size, length),) = stored(
        spool_path,
        "SELECT truncated, size, length(payload) FROM events WHERE method = 'tools/list'"
        " AND kind = 'response'",
    )
    assert (truncated, size, length) == (0, len(replies[1]) - 1, len(replies[1]) - 1)
    names = stored(spool_path, "SELECT name FROM inventory WHERE server = 'big' ORDER BY name")
    assert names == [(f"t{i}",) for i in range(5)]
