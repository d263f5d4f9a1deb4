"""The real MCP servers of tests/peers and the PyPI test extras give no poisoning finding above
`low`: their tool lists, fetched with the official SDK client, are what users run every day."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from km.insight.findings import at_least
from km.insight.poisoning import scan_tools

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "tests" / "peers" / "node_modules" / ".bin"
LIST_TIMEOUT_S = 60.0  # npx-free local servers answer in well under a second; slack for load


async def _list_tools(command: list[str], env: dict[str, str] | None) -> list[dict[str, Any]]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        result = await client.list_tools()
        return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in result.tools]


def real_tools(command: list[str], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return asyncio.run(asyncio.wait_for(_list_tools(command, env), LIST_TIMEOUT_S))


def _servers(tmp: Path) -> dict[str, tuple[list[str], dict[str, str] | None]]:
    repo = tmp / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return {
        "everything": ([str(BIN / "mcp-server-everything"), "stdio"], None),
        "filesystem": ([str(BIN / "mcp-server-filesystem"), str(tmp)], None),
        "memory": (
            [str(BIN / "mcp-server-memory")],
            {"MEMORY_FILE_PATH": str(tmp / "memory.jsonl"), "PATH": "/usr/bin:/bin"},
        ),
        "time": ([sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"], None),
        "git": ([sys.executable, "-m", "mcp_server_git", "--repository", str(repo)], None),
    }


@pytest.mark.parametrize("server", ["everything", "filesystem", "memory", "time", "git"])
def test_real_server_tools_have_no_finding_above_low(server: str, tmp_path: Path) -> None:
    command, env = _servers(tmp_path)[server]
    if env is not None and "PATH" in env:
        import os

        env["PATH"] = os.environ.get("PATH", env["PATH"])
    tools = real_tools(command, env)
    assert len(tools) >= 1
    assert all(isinstance(t.get("description", ""), str) for t in tools)
    findings = scan_tools(tools, server=server)
    loud = [f for f in findings if at_least(f.severity, "medium")]
    assert loud == [], [(f.tool, f.rule, f.severity, f.excerpt) for f in loud]
