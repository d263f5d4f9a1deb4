"""The official MCP Python SDK client talking to real MCP servers through `km`: results equal
to a direct connection, and the spool holds every message that crossed the wire, byte for
byte, with requests and responses paired."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING = ROOT / "tests" / "peers" / "node_modules" / ".bin" / "mcp-server-everything"
TEE = ROOT / "tests" / "peers" / "tee_server.py"
TIME_SERVER = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]

Script = Callable[[ClientSession], Awaitable[list[Any]]]


async def time_script(client: ClientSession) -> list[Any]:
    tools = await client.list_tools()
    converted = await client.call_tool(
        "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
    )
    await client.send_ping()
    bad = await client.call_tool("convert_time", {"source_timezone": "Nowhere/Land", "time": "1"})
    return [sorted(t.name for t in tools.tools), converted.model_dump(), bad.model_dump()]


async def everything_script(client: ClientSession) -> list[Any]:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    tools = await client.list_tools()
    echo = await client.call_tool("echo", {"message": "héllo through km ✓"})
    total = await client.call_tool("get-sum", {"a": 2, "b": 40})
    long_op = await client.call_tool(
        "trigger-long-running-operation",
        {"duration": 0.3, "steps": 3},
        progress_callback=on_progress,
    )
    return [
        sorted(t.name for t in tools.tools),
        echo.model_dump(),
        total.model_dump(),
        long_op.model_dump(),
        seen,
    ]


async def run_session(command: list[str], script: Script, env: dict[str, str]) -> list[Any]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        return await script(client)


def spool_rows(path: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(path)
    try:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM events ORDER BY seq").fetchall()
    finally:
        db.close()


CAPTURE_DONE_S = 30.0  # longest wait for the capture process to record the session's end


def wait_for_session_end(spool: Path) -> None:
    """km exits at most ~1 s after the session even when its capture process is still busy
    (it does not hold the client up for the spool; the capture process finishes on its own):
    wait, bounded, until the spool records the session's end."""
    deadline = time.monotonic() + CAPTURE_DONE_S
    while True:
        try:
            if not spool.exists():
                raise sqlite3.OperationalError("no spool yet")
            db = sqlite3.connect(spool)
            try:
                ended = db.execute("SELECT count(*) FROM sessions WHERE ended_ns IS NOT NULL")
                if ended.fetchone()[0]:
                    return
            finally:
                db.close()
        except sqlite3.OperationalError:
            pass  # not created yet
        assert time.monotonic() < deadline, "the capture process never recorded the session end"
        time.sleep(0.05)


def wire_lines(path: Path) -> list[bytes]:
    return [line.removesuffix(b"\r") for line in path.read_bytes().split(b"\n") if line.strip()]


def check_capture(spool: Path, wire_dir: Path, server: str) -> list[sqlite3.Row]:
    rows = [r for r in spool_rows(spool) if r["kind"] != "dropped"]
    assert rows, "nothing captured"
    assert {r["server"] for r in rows} == {server}
    for direction in ("c2s", "s2c"):
        captured = [bytes(r["payload"]) for r in rows if r["direction"] == direction]
        assert captured == wire_lines(wire_dir / direction), f"{direction} differs from the wire"
    requests = {r["id"]: r for r in rows if r["kind"] == "request"}
    responses = [r for r in rows if r["kind"] in ("response", "error")]
    assert len(responses) == len(requests), "every request answered once"
    for response in responses:
        request = requests[response["link_id"]]
        assert request["rpc_id"] == response["rpc_id"]
        assert request["direction"] != response["direction"]
        assert response["method"] == request["method"]
        assert response["latency_us"] is not None and response["latency_us"] >= 0
    return rows


@pytest.mark.parametrize(
    ("name", "command", "script"),
    [
        ("time", TIME_SERVER, time_script),
        ("everything", [str(EVERYTHING), "stdio"], everything_script),
    ],
)
def test_sdk_client_through_km_matches_direct_and_spool_has_every_message(
    name: str,
    command: list[str],
    script: Script,
    km_env: dict[str, str],
    spool_path: Path,
    tmp_path: Path,
) -> None:
    if name == "everything" and not EVERYTHING.exists():
        pytest.fail("npm test peers missing: run ./dev setup")
    direct = asyncio.run(run_session(command, script, km_env))
    wire = tmp_path / "wire"
    wire.mkdir()
    proxied_command = [
        sys.executable,
        "-m",
        "km",
        "--name",
        name,
        sys.executable,
        str(TEE),
        str(wire),
        *command,
    ]
    proxied = asyncio.run(run_session(proxied_command, script, km_env))
    assert proxied == direct
    wait_for_session_end(spool_path)
    rows = check_capture(spool_path, wire, name)
    if name == "everything":
        progress = [r for r in rows if r["method"] == "notifications/progress"]
        assert len(progress) >= 3
        call = next(
            r for r in rows if r["kind"] == "request" and b"trigger-long" in bytes(r["payload"])
        )
        assert {r["link_id"] for r in progress} == {call["id"]}
