"""`km setup` as a user runs it: the real km executable on real files in a temporary HOME."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.setup.conftest import KM_SCRIPT, Home

CURSOR = ".cursor/mcp.json"
CLAUDE_DESKTOP = ".config/Claude/claude_desktop_config.json"
VSCODE_SETTINGS = ".config/Code/User/settings.json"
CURSOR_CONFIG = """{
  "mcpServers": {
    "github": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x"}
    },
    "time": {"command": "mcp-server-time"},
    "linear": {"url": "https://mcp.linear.app/sse"}
  }
}
"""
VSCODE_CONFIG = """// user settings
{
  "editor.fontSize": 14, /* big */
  "mcp": {
    "servers": {
      "fetch": {
        "type": "stdio",
        "command": "uvx",
        "args": ["mcp-server-fetch",], // trailing comma
      },
      "remote": {"type": "http", "url": "https://example.com/mcp"},
    },
  },
}
"""


def servers(path: Path) -> dict[str, dict[str, object]]:
    data = json.loads(path.read_text())
    result: dict[str, dict[str, object]] = data["mcpServers"]
    return result


def test_setup_wraps_stdio_servers_and_undo_restores_the_bytes(home: Home) -> None:
    config = home.write(CURSOR, CURSOR_CONFIG)
    os.chmod(config, 0o640)
    result = home.km("setup", "cursor")
    assert result.returncode == 0, result.stderr
    assert "wrapped: github, time" in result.stdout and "remote: linear [url]" in result.stdout
    wrapped = servers(config)
    assert wrapped["github"] == {
        "command": KM_SCRIPT,
        "args": ["--name", "github", "--", "npx", "-y", "@modelcontextprotocol/server-github"],
        "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x"},
    }
    assert wrapped["time"] == {"command": KM_SCRIPT, "args": ["--name", "time", "--",
                                                                "mcp-server-time"]}  # fmt: skip
    assert wrapped["linear"] == {"url": "https://mcp.linear.app/sse"}
    assert stat.S_IMODE(config.stat().st_mode) == 0o640, "the file keeps its mode"
    backups = list((home.root / ".local/share/km/setup-backups").glob("*.orig"))
    assert [b.read_text() for b in backups] == [CURSOR_CONFIG]
    assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600

    after_first = config.read_bytes()
    again = home.km("setup", "cursor")
    assert again.returncode == 0 and "(unchanged)" in again.stdout
    assert "already wrapped: github, time" in again.stdout
    assert config.read_bytes() == after_first, "wrapping twice changes nothing"

    undo = home.km("setup", "--undo", "cursor")
    assert undo.returncode == 0, undo.stderr
    assert "unwrapped: github, time" in undo.stdout and "from the backup" in undo.stdout
    assert config.read_text() == CURSOR_CONFIG
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert not list((home.root / ".local/share/km/setup-backups").iterdir())


def test_undo_after_other_edits_unwraps_server_by_server_and_keeps_them(home: Home) -> None:
    config = home.write(CURSOR, CURSOR_CONFIG)
    assert home.km("setup", "cursor").returncode == 0
    edited = config.read_text().replace('"ghp_x"', '"ghp_new"')
    config.write_text(edited)
    undo = home.km("setup", "--undo")
    assert undo.returncode == 0, undo.stderr
    assert "server by server" in undo.stdout
    assert config.read_text() == CURSOR_CONFIG.replace('"ghp_x"', '"ghp_new"')


def test_jsonc_settings_keep_comments_and_trailing_commas(home: Home) -> None:
    settings = home.write(VSCODE_SETTINGS, VSCODE_CONFIG)
    result = home.km("setup", "vscode", "--km-command", "km")
    assert result.returncode == 0, result.stderr
    text = settings.read_text()
    assert text == VSCODE_CONFIG.replace('"uvx"', '"km"').replace(
        '["mcp-server-fetch",]', '["--name", "fetch", "--", "uvx", "mcp-server-fetch",]'
    )
    assert "remote: remote [url]" in result.stdout
    assert home.km("setup", "--undo", "vscode").returncode == 0
    assert settings.read_text() == VSCODE_CONFIG


def test_all_clients_and_project_files(home: Home) -> None:
    desktop = home.write(CLAUDE_DESKTOP, '{"mcpServers": {"a": {"command": "x"}}}')
    claude_code = home.write(".claude.json", json.dumps({
        "numStartups": 7,
        "projects": {"/src/app": {"mcpServers": {"b": {"command": "y"}}, "history": []}},
    }, indent=2))  # fmt: skip
    project = home.write("project/.mcp.json", '{"mcpServers": {"c": {"command": "z"}}}')
    originals = {p: p.read_bytes() for p in (desktop, claude_code, project)}
    result = home.km("setup")  # no client named: every client found
    assert result.returncode == 0, result.stderr
    assert "Claude Desktop:" in result.stdout and "Claude Code:" in result.stdout
    assert "wrapped: b (projects[/src/app])" in result.stdout
    for path in originals:
        assert path.read_bytes() != originals[path]
        assert KM_SCRIPT in path.read_text()
    assert json.loads(claude_code.read_text())["numStartups"] == 7
    assert home.km("setup", "all", "--undo").returncode == 0
    assert {p: p.read_bytes() for p in originals} == originals


def test_dry_run_prints_the_diff_and_changes_nothing(home: Home) -> None:
    config = home.write(CURSOR, CURSOR_CONFIG)
    result = home.km("setup", "--dry-run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"--- {config} (before)" in result.stdout
    assert '-      "command": "npx",' in result.stdout
    assert f'+      "command": "{KM_SCRIPT}",' in result.stdout
    assert "would be wrapped: github, time" in result.stdout
    assert "nothing was written" in result.stdout
    assert config.read_text() == CURSOR_CONFIG
    assert not (home.root / ".local/share/km").exists(), "no backup either"


SECRETS_CONFIG = """{
  "mcpServers": {
    "postgres": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-postgres", "postgresql://app:hunter2-db-pass@db/prod"],
      "env": {
        "GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "DB_PASSWORD": "correct-horse-battery",
        "SLACK_BOT_TOKEN": "xoxb-123456789012-abcdefghijkl"
      }
    }
  }
}
"""
SECRETS = (
    "hunter2-db-pass", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "correct-horse-battery",
    "xoxb-123456789012-abcdefghijkl",
)  # fmt: skip


def test_dry_run_masks_secret_values_in_the_diff_context_too(home: Home) -> None:
    config = home.write(CURSOR, SECRETS_CONFIG)
    result = home.km("setup", "--dry-run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f'+      "command": "{KM_SCRIPT}",' in result.stdout
    assert '         "DB_PASSWORD": "[REDACTED:key]",' in result.stdout  # a context line
    assert "postgresql://[REDACTED:url_credentials]@db/prod" in result.stdout
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    assert config.read_text() == SECRETS_CONFIG  # the file itself keeps them, untouched


def test_config_file_anywhere(home: Home) -> None:
    config = home.write("somewhere/servers.json", '{"servers": {"t": {"command": "x"}}}')
    assert home.km("setup", "--config", str(config)).returncode == 0
    assert json.loads(config.read_text())["servers"]["t"]["args"] == ["--name", "t", "--", "x"]


def test_missing_file_is_a_one_line_error(home: Home) -> None:
    result = home.km("setup", "--config", str(home.root / "nope.json"))
    assert result.returncode == 1
    assert result.stderr == f"km: {home.root / 'nope.json'}: no such file\n"
    named = home.km("setup", "windsurf")
    assert named.returncode == 1
    assert named.stderr.startswith("km: no Windsurf MCP config found (looked in ")
    assert named.stderr.count("\n") == 1


def test_invalid_json_says_line_and_column(home: Home) -> None:
    config = home.write(CURSOR, '{\n  "mcpServers": {\n    "a": {"command": "x"}\n    "b": {}\n}')
    result = home.km("setup", "cursor")
    assert result.returncode == 1
    assert result.stderr == (
        f"km: {config}: not valid JSON: expected ',' or '}}' at line 4, column 5\n"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_file_is_an_error_and_left_as_it_was(home: Home) -> None:
    config = home.write(CURSOR, CURSOR_CONFIG)
    config.parent.chmod(0o500)
    try:
        result = home.km("setup", "cursor")
    finally:
        config.parent.chmod(0o700)
    assert result.returncode == 1
    assert result.stderr.startswith(f"km: {config}: cannot write: ")
    assert config.read_text() == CURSOR_CONFIG


def test_a_symlinked_config_stays_a_symlink(home: Home) -> None:
    target = home.write("dotfiles/mcp.json", CURSOR_CONFIG)
    link = home.root / CURSOR
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    assert home.km("setup", "cursor").returncode == 0
    assert link.is_symlink() and KM_SCRIPT in target.read_text()
    assert home.km("setup", "--undo", "cursor").returncode == 0
    assert link.is_symlink() and target.read_text() == CURSOR_CONFIG
