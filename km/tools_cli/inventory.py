"""`km tools [SERVER] [--json] [--spool PATH]`: each server's tools, their context tokens, the
definition history, drift and findings, as rich tables that fit an 80-column terminal (or JSON).

Everything captured (names, descriptions, diffs, excerpts) is shown through `visible` (control
and hidden characters made visible) and `rich.markup.escape`: a server's text cannot drive the
terminal or rich's markup.
"""

from __future__ import annotations

import sys
from typing import Any

from km.arguments import CommandParser, ParserExit
from km.errors import SpoolError, UsageError
from km.insight.text import visible
from km.settings import Settings

MAX_CHANGES = 10  # latest definition changes listed per server
MAX_DIFF_LINES = 40  # lines of each unreviewed change's diff shown
SEVERITY_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def _parser() -> CommandParser:
    parser = CommandParser(
        prog="km tools",
        description="Each server's tools: context tokens, definition history, drift, findings.",
    )
    parser.add_argument("server", nargs="?", help="one server (its km name)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--spool", metavar="PATH", help="spool database to read (KM_SPOOL)")
    return parser


def run_inventory(args: list[str], settings: Settings) -> int:
    try:
        options = _parser().parse_args(args)
    except ParserExit as done:
        return done.status
    if options.spool:
        settings.set("spool_path", options.spool, "--spool")
    from km.tools_cli.views import read_tools

    try:
        view = read_tools(settings.resolve_spool_path(), options.server)
    except SpoolError as exc:
        sys.stderr.write(f"km: {exc}\n")
        return exc.exit_code
    if options.server and not view["servers"]:
        from km.tools_cli import SUBCOMMANDS

        known = ", ".join(sorted({s["server"] for s in read_tools(view["path"])["servers"]}))
        raise UsageError(
            f"km tools: no tool list captured for server {options.server!r} "
            f"(servers: {known or 'none yet'}; subcommands: {', '.join(SUBCOMMANDS)})"
        )
    if options.json:
        import orjson

        sys.stdout.write(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    _print(view, options.server)
    return 0


def show(text: object, limit: int = 120) -> str:
    """Captured text made safe for a rich console: hidden characters visible, markup escaped."""
    from rich.markup import escape

    return escape(visible("" if text is None else str(text), limit))


def _print(view: dict[str, Any], server: str | None) -> None:
    from rich.console import Console

    console = Console()
    if not view["exists"]:
        console.print(f"No spool yet at {show(view['path'], 400)}.", soft_wrap=True)
        return
    if not view["servers"]:
        what = f"server {show(server)}" if server else "any server"
        console.print(
            f"No tool list captured for {what} yet: run an MCP server through km "
            "and let a client list its tools.",
            soft_wrap=True,
        )
        return
    now = view["now_ns"]
    for s in view["servers"]:
        _print_server(console, s, now)


def _print_server(console: Any, s: dict[str, Any], now_ns: int) -> None:
    from rich.table import Table

    from km.status_cmd import describe_age

    identity = show(s["server"])
    if s["info_name"]:
        identity += f" ({show(s['info_name'])} {show(s['info_version'] or '?')})"
    total = "?" if s["tokens"] is None else f"{s['tokens']:,}"
    table = Table(
        title=f"{identity}: {len(s['tools'])} tools, {total} tokens in every conversation",
        title_justify="left",
    )
    table.add_column("tool", overflow="fold", ratio=3)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("hash", no_wrap=True)
    table.add_column("seen", no_wrap=True)
    table.add_column("state", overflow="fold", ratio=1)
    for t in s["tools"]:
        state = t["state"]
        if state == "changed":
            state = "[bold red]changed[/]"
        if t["findings"]:
            state += f", {t['findings']} finding{'s' if t['findings'] > 1 else ''}"
        table.add_row(
            show(t["name"], 200),
            "?" if t["tokens"] is None else str(t["tokens"]),
            t["hash"][:8],
            f"{t['sessions']}x, {describe_age(now_ns - t['last_seen_ns'])}",
            state,
        )
    console.print(table)
    for problem in s["problems"]:
        console.print(f"  [yellow]listing problem:[/] {show(problem, 200)}")
    _print_findings(console, "to review", s["drift"] + s["poisoning"] + s["recent_findings"])
    _print_changes(console, s, now_ns)


def _print_findings(console: Any, title: str, findings: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from km.insight.findings import severity_rank

    if not findings:
        return
    table = Table(title=f"findings {title}", title_justify="left", show_lines=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("tool", overflow="fold", ratio=1)
    table.add_column("what", overflow="fold", ratio=3)
    for f in sorted(findings, key=lambda f: -severity_rank(f["severity"])):
        style = SEVERITY_STYLE.get(f["severity"], "")
        what = show(f["message"], 300)
        if f.get("field"):
            what += f" [dim]({show(f['field'], 80)})[/]"
        if f.get("excerpt"):
            what += f"\n[dim]{show(f['excerpt'], 160)}[/]"
        table.add_row(f"[{style}]{f['severity']}[/]", f["rule"], show(f.get("tool") or "-"), what)
    console.print(table)


def _print_changes(console: Any, s: dict[str, Any], now_ns: int) -> None:
    from rich.table import Table

    from km.status_cmd import describe_age

    changes = s["changes"][-MAX_CHANGES:]
    if not changes:
        return
    table = Table(title="definition history (latest)", title_justify="left")
    table.add_column("when", no_wrap=True)
    table.add_column("tool", overflow="fold", ratio=2)
    table.add_column("change", overflow="fold", ratio=2)
    table.add_column("version", overflow="fold", ratio=1)
    for c in changes:
        what = c["change"] + (f": {c['fields']}" if c["fields"] else "")
        if c.get("announced"):
            what += " (announced by list_changed)"
        version = show(c["new_version"] or "?")
        if c["old_version"] != c["new_version"]:
            version = f"{show(c['old_version'] or '?')} -> {version}"
        table.add_row(describe_age(now_ns - c["ts_ns"]), show(c["name"], 200), show(what), version)
    console.print(table)
    flagged = {f["tool"] for f in s["drift"]}
    for c in reversed(changes):
        if c["name"] in flagged and c["diff"]:
            flagged.discard(c["name"])
            console.print(f"[bold]diff of {show(c['name'])}[/] (unreviewed):")
            for line in c["diff"].splitlines()[:MAX_DIFF_LINES]:
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                text = show(line, 400)
                console.print(f"[{style}]{text}[/]" if style else text, overflow="fold")
