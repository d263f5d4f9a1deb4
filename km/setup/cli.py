"""`km setup [client|all] [--config PATH] [--undo] [--dry-run] [--km-command CMD]`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from km.arguments import CommandParser, ParserExit
from km.errors import KmError
from km.settings import Settings
from km.setup.apply import FileResult, km_executable, unwrap_file, wrap_file
from km.setup.clients import CLIENTS, DISPLAY_NAMES, ConfigLocation, config_locations
from km.setup.files import BackupStore


class NoConfigFound(KmError):
    """No MCP client config file to work on."""


ALL = "all"
ACTION_ORDER = (
    "wrapped", "repaired", "unwrapped", "already wrapped", "uses km", "not wrapped", "remote",
    "skipped",
)  # fmt: skip


def _parser() -> CommandParser:
    parser = CommandParser(
        prog="km setup",
        description="Put km in front of every stdio MCP server of your MCP clients "
        "(or take it out again with --undo). Remote (URL) servers are left alone.",
    )
    parser.add_argument(
        "client", nargs="?", choices=(*CLIENTS, ALL), default=None,
        help="which client's config to change (default: all found, or only --config files)",
    )  # fmt: skip
    parser.add_argument(
        "--config", action="append", default=[], metavar="PATH",
        help="a config file to change (any client; may be repeated)",
    )  # fmt: skip
    parser.add_argument("--undo", action="store_true", help="take km out again, exactly")
    parser.add_argument("--dry-run", action="store_true", help="print the diff and change nothing")
    parser.add_argument(
        "--km-command", metavar="CMD",
        help="the command clients run for km (default: this km's absolute path; "
        "`--km-command km` to rely on PATH)",
    )  # fmt: skip
    return parser


def backup_store() -> BackupStore:
    import platformdirs

    data_dir = platformdirs.user_data_dir("km", appauthor=False)
    return BackupStore(os.path.join(data_dir, "setup-backups"))


def find_locations(
    client: str | None, explicit: list[str], environ: Mapping[str, str]
) -> list[ConfigLocation]:
    """The existing config files to work on (NoConfigFound when a named client has none)."""
    found = [ConfigLocation("file", os.path.abspath(path), "file") for path in explicit]
    if client is None and explicit:
        return found
    for name in CLIENTS if client in (None, ALL) else (client,):
        candidates = config_locations(name, environ, sys.platform, os.getcwd())
        existing = [loc for loc in candidates if os.path.isfile(loc.path)]
        if not existing and client == name:
            looked = ", ".join(loc.path for loc in candidates)
            raise NoConfigFound(f"no {DISPLAY_NAMES[name]} MCP config found (looked in {looked})")
        found += existing
    if not found:
        raise NoConfigFound(
            "no MCP client config found (Claude Desktop, Claude Code, Cursor, VS Code, "
            "Windsurf); name one with --config PATH"
        )
    return found


def run_setup(args: list[str], settings: Settings, environ: Mapping[str, str]) -> int:
    del settings  # km setup reads nothing from km's own settings
    try:
        options = _parser().parse_args(args)
    except ParserExit as done:
        return done.status
    locations = find_locations(options.client, options.config, environ)
    store = backup_store()
    km_command = options.km_command or km_executable()
    failures = 0
    changed = 0
    for location in locations:
        try:
            if options.undo:
                result = unwrap_file(location.path, store, options.dry_run)
            else:
                result = wrap_file(location.path, km_command, store, options.dry_run)
        except KmError as exc:
            sys.stderr.write(f"km: {exc}\n")
            failures += 1
            continue
        changed += result.changed
        if options.dry_run:
            sys.stdout.write(result.diff)
        sys.stdout.write(describe(location, result, options.dry_run))
    if options.dry_run:
        sys.stdout.write("dry run: nothing was written\n")
    elif changed:
        sys.stdout.write("Restart the changed clients (or reload their MCP servers) to apply.\n")
    return 1 if failures else 0


def describe(location: ConfigLocation, result: FileResult, dry_run: bool) -> str:
    """The summary of one file: per action, the servers it applied to."""
    label = DISPLAY_NAMES.get(location.client, "config")
    lines = [f"{label}: {result.path}" + ("" if result.changed else " (unchanged)")]
    by_action: dict[str, list[str]] = {}
    for outcome in result.outcomes:
        name = outcome.name
        if outcome.table.startswith("projects["):
            name = f"{name} ({outcome.table.removesuffix('.mcpServers')})"
        if outcome.reason:
            name = f"{name} [{outcome.reason}]"
        by_action.setdefault(outcome.action, []).append(name)
    if not by_action:
        lines.append("  no MCP servers")
    for action in ACTION_ORDER:
        if action in by_action:
            verb = (
                f"would be {action}"
                if dry_run and action in ("wrapped", "repaired", "unwrapped")
                else action
            )
            lines.append(f"  {verb}: {', '.join(by_action[action])}")
    if result.note:
        lines.append(f"  {result.note}")
    return "\n".join(lines) + "\n"
