"""`scripts/demo.sh` (what `./dev demo` runs after setup) end to end: a local `km serve`, real
MCP servers through km, delivery, status and stats. It shows km's own output only, no `None`,
and ends by naming the commands to try next."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_the_demo_reads_cleanly_and_says_what_next(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KM_", "XDG_"))}
    env.update(
        HOME=str(tmp_path),
        KM_DEMO_PORT=str(free_port()),
        KM_DEMO_DB=str(tmp_path / "server.db"),
        COLUMNS="80",
    )
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert "None" not in shown
    assert "Starting default (STDIO) server" not in shown  # a server's stderr: logged
    assert "created key" not in shown  # km serve's own chatter: logged
    assert "sent 0 events" not in shown
    assert "nothing left to send" in shown or re.search(r"km: sent [1-9]\d* events", shown)
    assert "mcp-server-everything" in shown and "mcp-serv…" not in shown
    stats = [line for line in shown.splitlines() if "notifications/initialized" in line]
    assert stats and all(line.rstrip().endswith("-") for line in stats), stats
    next_steps = shown[shown.index("== what next ==") :]
    for command in ("km setup", "km tools", "km tail"):
        assert f"  {command} " in next_steps
