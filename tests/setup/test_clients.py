"""Config locations per client and operating system, from the environment alone."""

from __future__ import annotations

import pytest

from km.setup.clients import CLIENTS, config_locations

LINUX = {"HOME": "/home/u"}
MAC = {"HOME": "/Users/u"}
WINDOWS = {"USERPROFILE": r"C:\Users\u", "APPDATA": r"C:\Users\u\AppData\Roaming"}


def user_paths(client: str, environ: dict[str, str], platform: str) -> list[str]:
    locations = config_locations(client, environ, platform, "/src/app")
    return [loc.path for loc in locations if loc.scope == "user"]


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        (LINUX, "linux", "/home/u/.config/Claude/claude_desktop_config.json"),
        ({**LINUX, "XDG_CONFIG_HOME": "/xdg"}, "linux", "/xdg/Claude/claude_desktop_config.json"),
        (MAC, "darwin", "/Users/u/Library/Application Support/Claude/claude_desktop_config.json"),
        (WINDOWS, "win32", r"C:\Users\u\AppData\Roaming\Claude\claude_desktop_config.json"),
    ],
)
def test_claude_desktop(environ: dict[str, str], platform: str, expected: str) -> None:
    assert user_paths("claude-desktop", environ, platform) == [expected]


def test_home_directory_clients() -> None:
    assert user_paths("cursor", LINUX, "linux") == ["/home/u/.cursor/mcp.json"]
    assert user_paths("windsurf", MAC, "darwin") == ["/Users/u/.codeium/windsurf/mcp_config.json"]
    assert user_paths("claude-code", WINDOWS, "win32") == [r"C:\Users\u\.claude.json"]
    assert user_paths("claude-code", {**LINUX, "CLAUDE_CONFIG_DIR": "/cc"}, "linux") == [
        "/cc/.claude.json",
        "/home/u/.claude.json",
    ]


def test_vscode_user_and_project_files() -> None:
    locations = config_locations("vscode", MAC, "darwin", "/src/app")
    assert [(loc.path, loc.scope) for loc in locations] == [
        ("/Users/u/Library/Application Support/Code/User/mcp.json", "user"),
        ("/Users/u/Library/Application Support/Code/User/settings.json", "user"),
        ("/Users/u/Library/Application Support/Code - Insiders/User/mcp.json", "user"),
        ("/Users/u/Library/Application Support/Code - Insiders/User/settings.json", "user"),
        ("/src/app/.vscode/mcp.json", "project"),
    ]


def test_every_client_has_a_location() -> None:
    for client in CLIENTS:
        assert config_locations(client, LINUX, "linux", "/src")
    with pytest.raises(ValueError):
        config_locations("emacs", LINUX, "linux", "/src")
