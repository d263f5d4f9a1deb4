"""Where each MCP client keeps its server config, per operating system.

Paths are computed from an environment mapping and a platform name (no I/O), so tests point
them at a temporary HOME. User-level files come first, then project files in `cwd`.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode", "windsurf")
DISPLAY_NAMES = {
    "claude-desktop": "Claude Desktop",
    "claude-code": "Claude Code",
    "cursor": "Cursor",
    "vscode": "VS Code",
    "windsurf": "Windsurf",
}
VSCODE_FLAVOURS = ("Code", "Code - Insiders")


@dataclass(frozen=True, slots=True)
class ConfigLocation:
    client: str  # one of CLIENTS, or "file" for a path given with --config
    path: str
    scope: str  # user, project or file


def config_locations(
    client: str, environ: Mapping[str, str], platform: str, cwd: str
) -> list[ConfigLocation]:
    """Every file `client` may keep MCP servers in, whether or not it exists."""
    home = home_dir(environ, platform)
    join = ntpath.join if platform == "win32" else posixpath.join
    app_config = app_config_dir(environ, platform, home)
    user: list[str]
    project: list[str] = []
    if client == "claude-desktop":
        user = [join(app_config, "Claude", "claude_desktop_config.json")]
    elif client == "claude-code":
        claude_dir = environ.get("CLAUDE_CONFIG_DIR")
        user = [join(claude_dir, ".claude.json")] if claude_dir else []
        user.append(join(home, ".claude.json"))
        project = [join(cwd, ".mcp.json")]
    elif client == "cursor":
        user = [join(home, ".cursor", "mcp.json")]
        project = [join(cwd, ".cursor", "mcp.json")]
    elif client == "vscode":
        user = [
            join(app_config, flavour, "User", name)
            for flavour in VSCODE_FLAVOURS
            for name in ("mcp.json", "settings.json")
        ]
        project = [join(cwd, ".vscode", "mcp.json")]
    elif client == "windsurf":
        user = [join(home, ".codeium", "windsurf", "mcp_config.json")]
    else:
        raise ValueError(f"unknown client {client!r}")
    locations = [ConfigLocation(client, path, "user") for path in user]
    locations += [ConfigLocation(client, path, "project") for path in project if path not in user]
    return _unique(locations)


def home_dir(environ: Mapping[str, str], platform: str) -> str:
    if platform == "win32":
        home = environ.get("USERPROFILE") or environ.get("HOME")
    else:
        home = environ.get("HOME")
    return home or os.path.expanduser("~")


def app_config_dir(environ: Mapping[str, str], platform: str, home: str) -> str:
    """Where desktop apps keep their settings: XDG, Application Support, or %APPDATA%."""
    if platform == "win32":
        return environ.get("APPDATA") or ntpath.join(home, "AppData", "Roaming")
    if platform == "darwin":
        return posixpath.join(home, "Library", "Application Support")
    return environ.get("XDG_CONFIG_HOME") or posixpath.join(home, ".config")


def _unique(locations: list[ConfigLocation]) -> list[ConfigLocation]:
    seen: set[str] = set()
    out = []
    for location in locations:
        if location.path not in seen:
            seen.add(location.path)
            out.append(location)
    return out
