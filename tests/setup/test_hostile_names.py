"""km setup and km doctor show hostile names as what they are (see tests/test_terminal.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.setup.conftest import Home

TITLE = "\x1b]0;pwned\x07"


def test_km_setup_and_doctor_show_hostile_names(home: Home, tmp_path: Path) -> None:
    config = {"mcpServers": {f"evil{TITLE}[/bogus]": {"command": "mcp-server-time"}}}
    home.write(".cursor/mcp.json", json.dumps(config))
    result = home.km("setup", "cursor", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "evil\\x1b]0;pwned\\x07[/bogus]" in result.stdout
    home.env["KM_SPOOL"] = str(tmp_path / f"sp{TITLE}" / "spool.db")
    doctor = home.km("doctor")
    assert "\x1b" not in doctor.stdout and "\x07" not in doctor.stdout
    assert "sp\\x1b]0;pwned\\x07" in doctor.stdout
