"""Derive a readable server name from an MCP server command line (sans-IO).

`npx -y @modelcontextprotocol/server-github` -> `server-github`,
`uvx mcp-server-git --repository .` -> `mcp-server-git`, `python -m mcp_server_time` ->
`mcp_server_time`, `docker run -i --rm mcp/fetch` -> `fetch`, `/opt/bin/my-server` ->
`my-server`. `--name` overrides whatever this guesses.
"""

from __future__ import annotations

import os
import re

# Launchers whose interesting argument is the package, script or module they run, with the
# options of theirs that take a value (so the value is not mistaken for the package).
_LAUNCHERS: dict[str, frozenset[str]] = {
    "npx": frozenset({"-p", "--package", "-c", "--call"}),
    "bunx": frozenset({"-p", "--package"}),
    "pnpm": frozenset(),
    "yarn": frozenset(),
    "uvx": frozenset({"--from", "--with", "-p", "--python", "--index", "--index-url"}),
    "pipx": frozenset({"--spec", "--python", "--index-url"}),
    "uv": frozenset({"--from", "--with", "-p", "--python", "--directory", "--project"}),
    "node": frozenset({"-r", "--require", "--import", "--loader"}),
    "deno": frozenset({"--config", "-c"}),
    "bun": frozenset(),
    "docker": frozenset(
        {
            "-e",
            "--env",
            "-v",
            "--volume",
            "--name",
            "--network",
            "-p",
            "--publish",
            "--env-file",
            "--mount",
            "-w",
            "--workdir",
            "--entrypoint",
            "-u",
            "--user",
        }
    ),
    "podman": frozenset(
        {"-e", "--env", "-v", "--volume", "--name", "--network", "-p", "--env-file"}
    ),
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S"}),
}
# Words that are sub-commands of a launcher, not the thing it runs.
_SUBCOMMANDS = frozenset({"run", "exec", "dlx", "x", "tool", "--"})
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# File and folder names that say nothing about which server it is.
_GENERIC = frozenset(
    {"index", "main", "server", "cli", "dist", "build", "src", "bin", "lib", "app"}
)


def _clean(word: str) -> str:
    base = word.rstrip("/").rsplit("/", 1)[-1]
    if word.startswith("@") and "/" in word:  # npm scope: @scope/name@1.2.3
        base = word.split("/", 1)[1]
    base = base.split("@", 1)[0] if not base.startswith("@") else base
    base = base.split("==", 1)[0]
    for suffix in (".exe", ".cmd", ".js", ".mjs", ".cjs", ".ts", ".py"):
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
    if base in _GENERIC and "/" in word:
        for part in reversed(word.rstrip("/").split("/")[:-1]):
            if part and part not in _GENERIC and part not in (".", ".."):
                return part
    return base or word


def derive_server_name(argv: list[str]) -> str:
    """A short, stable name for the server that `argv` starts."""
    if not argv:
        return "unknown"
    program = os.path.basename(argv[0]).removesuffix(".exe")
    rest = argv[1:]
    if _PYTHON.match(program):
        for i, word in enumerate(rest):
            if word == "-m" and i + 1 < len(rest):
                return rest[i + 1]
            if word == "-c":
                return program
            if not word.startswith("-"):
                return _clean(word)
        return program
    takes_value = _LAUNCHERS.get(program)
    if takes_value is None:
        return _clean(argv[0])
    skip = False
    for word in rest:
        if skip:
            skip = False
            continue
        if word in takes_value:
            skip = True
            continue
        if word.startswith("-") or word in _SUBCOMMANDS or _ENV_ASSIGNMENT.match(word):
            continue
        if program == "env":
            return derive_server_name(rest[rest.index(word) :])
        return _clean(word)
    return program
