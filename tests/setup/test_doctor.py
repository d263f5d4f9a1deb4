"""`km doctor` with the real km: against a real `km serve` on loopback with a good key and a bad
key, with no API, and with clients wrapped or not."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from km.spool.schema import SCHEMA_VERSION
from tests.conftest import ProcessReaper
from tests.setup.conftest import KM_SCRIPT, Home
from tests.test_km_to_api import create_key, free_port, start_server

CURSOR_CONFIG = '{"mcpServers": {"time": {"command": "mcp-server-time"}}}'


def doctor(home: Home) -> tuple[int, dict[str, dict[str, Any]], str]:
    """Exit status, the checks by name, and everything km printed."""
    result = home.km("doctor", "--json")
    body = json.loads(result.stdout)
    assert body["ok"] == (result.returncode == 0)
    return result.returncode, {c["name"]: c for c in body["checks"]}, result.stdout + result.stderr


def capture_once(home: Home) -> None:
    """Create the spool the way a user would: run one server through km."""
    result = subprocess.run([KM_SCRIPT, "--name", "probe", "cat"], input=b"{}\n",
                            capture_output=True, env=home.env, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr


def with_km_on_path(home: Home) -> None:
    home.env["PATH"] = os.path.dirname(KM_SCRIPT) + os.pathsep + home.env.get("PATH", "")


def test_all_good_then_a_bad_key(home: Home, tmp_path: Path, reaper: ProcessReaper) -> None:
    db = tmp_path / "server.db"
    key = create_key(db, home.env)
    base = start_server(reaper, db, free_port(), home.env)
    with_km_on_path(home)
    home.write(".cursor/mcp.json", CURSOR_CONFIG)
    assert home.km("setup", "cursor").returncode == 0
    capture_once(home)
    home.env.update(KM_API_URL=base, KM_API_KEY=key)

    status, checks, printed = doctor(home)
    assert status == 0, printed
    assert {name: c["status"] for name, c in checks.items()} == {
        "km on PATH": "ok", "spool": "ok", "API": "ok", "API key": "ok", "Cursor": "ok",
    }  # fmt: skip
    assert checks["km on PATH"]["detail"] == KM_SCRIPT
    assert f"healthy, schema {SCHEMA_VERSION}" in checks["spool"]["detail"]
    assert "all 1 stdio servers wrapped" in checks["Cursor"]["detail"]
    assert key not in printed

    bad_key = "km_live_" + "x" * 32
    home.env["KM_API_KEY"] = bad_key
    status, checks, printed = doctor(home)
    assert status == 1
    assert checks["API"]["status"] == "ok"
    assert checks["API key"]["status"] == "fail" and "rejected (HTTP 401)" in printed
    assert checks["API key"]["fix"].startswith("km login")
    assert bad_key not in printed

    text = home.km("doctor")
    assert text.returncode == 1
    assert "fail  API key" in text.stdout and "fix: km login" in text.stdout
    assert bad_key not in text.stdout


def test_no_api_and_unwrapped_clients(home: Home) -> None:
    home.write(".cursor/mcp.json", CURSOR_CONFIG)
    home.env["PATH"] = "/nonexistent"
    status, checks, _ = doctor(home)
    assert status == 0, "warnings alone do not fail"
    assert checks["API"]["status"] == "warn" and checks["API"]["fix"] == "km login --url URL"
    assert checks["Cursor"] == {
        "name": "Cursor", "status": "warn", "fix": "km setup cursor",
        "detail": f"not wrapped: time ({home.root / '.cursor/mcp.json'})",
    }  # fmt: skip
    assert checks["km on PATH"]["status"] == "warn"
    assert checks["spool"]["status"] == "ok" and "does not exist yet" in checks["spool"]["detail"]

    home.env["KM_API_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    status, checks, _ = doctor(home)
    assert status == 1
    assert checks["API"]["status"] == "fail" and "not reachable" in checks["API"]["detail"]
    assert "API key" not in checks


def test_a_damaged_spool_fails_with_the_fix(home: Home) -> None:
    Path(home.env["KM_SPOOL"]).write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    status, checks, _ = doctor(home)
    assert status == 1
    assert checks["spool"]["status"] == "fail"
    assert checks["spool"]["fix"].startswith(f"mv {home.env['KM_SPOOL']} ")


def test_a_wrapper_whose_km_is_gone_fails(home: Home) -> None:
    home.write(".cursor/mcp.json", CURSOR_CONFIG)
    assert home.km("setup", "cursor", "--km-command", "/gone/bin/km").returncode == 0
    status, checks, _ = doctor(home)
    assert status == 1
    assert checks["Cursor"]["status"] == "fail"
    assert checks["Cursor"]["fix"] == "km setup --undo cursor && km setup cursor"
