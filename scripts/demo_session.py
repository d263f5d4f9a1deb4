"""Run a real MCP session through `km`: the official MCP Python SDK client talks to real MCP
servers (mcp-server-time from PyPI, server-everything from npm) with `km` in front of each, as
an MCP client configuration would. Afterwards `km status` shows what was captured.

Usage: .venv/bin/python scripts/demo_session.py
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent
KM = str(Path(sys.executable).parent / "km")
EVERYTHING = ROOT / "tests" / "peers" / "node_modules" / ".bin" / "mcp-server-everything"


# The servers' own stderr ("Starting default (STDIO) server...") is theirs, not km's: logged.
SERVER_LOG = os.environ.get("KM_DEMO_SERVER_LOG", os.devnull)

# The MCP SDK passes only a few variables to servers; km's own settings must reach km.
KM_ENV = {k: v for k, v in os.environ.items() if k.startswith("KM_")}


async def session(args: list[str], calls: list[tuple[str, dict[str, Any]]]) -> None:
    params = StdioServerParameters(command=KM, args=args, env=KM_ENV)
    with open(SERVER_LOG, "a", encoding="utf-8") as errlog:
        await _session(params, calls, errlog)


async def _session(
    params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]], errlog: TextIO
) -> None:
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write) as client,
    ):
        init = await client.initialize()
        tools = await client.list_tools()
        print(f"{init.server_info.name}: {len(tools.tools)} tools through km")
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            text = " ".join(getattr(c, "text", "") for c in getattr(result, "content", []))
            text = " ".join(text.split())
            print(f"  {name}({arguments}) -> {text[:100]}")


async def main() -> None:
    await session(
        [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"],
        [
            ("get_current_time", {"timezone": "Europe/Paris"}),
            (
                "convert_time",
                {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
            ),
        ],
    )
    if EVERYTHING.exists():
        await session(
            [str(EVERYTHING), "stdio"],
            [
                ("echo", {"message": "hello through km, from alice@example.com"}),
                ("get-sum", {"a": 2, "b": 40}),
            ],
        )


if __name__ == "__main__":
    asyncio.run(main())
