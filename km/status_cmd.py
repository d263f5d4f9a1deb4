"""`km status`: what the spool holds, as tables (rich) or as JSON (`--json`)."""

from __future__ import annotations

import sys
import time
from typing import Any

from km.errors import SpoolError
from km.settings import Settings

EXAMPLE = "km python -m mcp_server_time"
# What the columns beside a server name need at the least (borders and padding included), so
# that a name is cut only when the terminal is too narrow for it and the rest.
SERVERS_OTHER_COLUMNS = 14
SESSIONS_OTHER_COLUMNS = 56
WIDE_TERMINAL = 140  # the sessions table shows full times from this width on, ages below it


def run_status(settings: Settings, as_json: bool) -> int:
    """Print the spool's status; the exit code (0, or the spool error's when it is unreadable)."""
    from km.spool.status import read_status

    api = _api_info(settings)  # reads the config file first: it may name the spool too
    path = settings.resolve_spool_path()
    try:
        status = read_status(path)
    except SpoolError as exc:
        sys.stderr.write(f"km: {exc}\n")
        return exc.exit_code
    status["attention"] = _attention(path)
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    _print_tables(status, api, time.time_ns())
    if status["exists"]:
        _print_attention(status["attention"])
    return 0


def _attention(path: str) -> dict[str, Any]:
    """The findings that need attention (km/tools_cli/views.py), counted by severity."""
    from km.tools_cli.views import attention, read_tools

    try:
        found = attention(read_tools(path))
    except SpoolError as exc:
        return {"count": None, "by_severity": {}, "error": str(exc)}
    by_severity: dict[str, int] = {}
    for f in found:
        by_severity[f["severity"]] = by_severity.get(f["severity"], 0) + 1
    return {"count": len(found), "by_severity": by_severity, "error": None}


def _print_attention(att: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    if att["count"] is None:
        console.print(f"findings: unreadable ({escape(att['error'] or '?')})", soft_wrap=True)
    elif not att["count"]:
        console.print("findings: none need attention")
    else:
        parts = ", ".join(f"{n} {sev}" for sev, n in att["by_severity"].items())
        console.print(
            f"[bold]findings: {att['count']} need attention[/] ({parts}): see `km tools`",
            soft_wrap=True,
        )


def _api_info(settings: Settings) -> dict[str, Any]:
    """Where the uplink delivers to, with the key masked; `error` when the config is broken."""
    from km.errors import KmError
    from km.uplink.secret import display_url, mask

    try:
        settings.load_config_file()
    except KmError as exc:
        url = display_url(settings.api_url) if settings.api_url else None
        return {"url": url, "key": None, "error": str(exc)}
    return {
        "url": display_url(settings.api_url) if settings.api_url else None,
        "key": mask(settings.api_key) if settings.api_key else None,
        "error": None,
    }


def describe_time(ns: int | None, now_ns: int) -> str:
    """`3 s ago (2026-11-22 03:04:34)`, or `-` for no time."""
    if ns is None:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))
    return f"{describe_age(now_ns - ns)} ({stamp})"


def describe_when(ns: int | None, now_ns: int, width: int) -> str:
    """`describe_time` where the terminal has room for it, else only the age (`3 s ago`)."""
    if ns is None:
        return "-"
    return describe_time(ns, now_ns) if width >= WIDE_TERMINAL else describe_age(now_ns - ns)


def describe_age(delta_ns: int) -> str:
    """`3 s ago`, `5 min ago`, `2 h ago`, `4 d ago` (`in 3 s` for a time ahead of the clock)."""
    seconds = abs(delta_ns) / 1e9
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        text = f"{int(seconds)} s"
    return f"{text} ago" if delta_ns >= 0 else f"in {text}"


def describe_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _print_tables(status: dict[str, Any], api: dict[str, Any], now_ns: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from km.display import fit_names

    console = Console()
    path = status["path"]
    if not status["exists"]:
        console.print(
            f"No spool yet at {path}. Run an MCP server through km, e.g. `{EXAMPLE}`.",
            soft_wrap=True,  # one line whatever the path's length (and copyable)
        )
        return
    if not status["events_total"] and not status["sessions_total"]:
        console.print(
            f"The spool at {path} is empty. Run an MCP server through km, e.g. `{EXAMPLE}`.",
            soft_wrap=True,
        )
        return

    summary = Table(title="km spool", show_header=False)
    summary.add_row("path", path)
    summary.add_row(
        "size",
        f"{describe_bytes(status['file_bytes'])} on disk "
        f"(wal {describe_bytes(status['wal_bytes'])}), {describe_bytes(status['used_bytes'])} used",
    )
    summary.add_row("schema version", str(status["schema_version"]))
    summary.add_row("last capture", describe_time(status["last_capture_ns"], now_ns))
    states = ", ".join(f"{name} {n}" for name, n in status["events_by_state"].items())
    summary.add_row("events", f"{status['events_total']} ({states})")
    dropped, evicted = status["dropped"], status["evicted"]
    summary.add_row("dropped", f"{dropped['frames']} frames, {describe_bytes(dropped['bytes'])}")
    summary.add_row("evicted", f"{evicted['events']} events, {describe_bytes(evicted['bytes'])}")
    summary.add_row("live km processes", str(len(status["live"])))
    console.print(summary)
    _print_delivery(console, status["delivery"], api, now_ns)

    by_server = status["events_by_server"]
    names, width = fit_names(list(by_server), console.width, SERVERS_OTHER_COLUMNS)
    servers = Table(title="events by server")
    servers.add_column("server", no_wrap=True, min_width=width)
    servers.add_column("events", justify="right")
    for name, count in zip(names, by_server.values(), strict=True):
        servers.add_row(escape(name), str(count))
    console.print(servers)

    shown, total = len(status["sessions"]), status["sessions_total"]
    title = "sessions" if shown == total else f"sessions (latest {shown} of {total})"
    sessions = Table(title=title)
    session_names, width = fit_names(
        [s["server"] for s in status["sessions"]], console.width, SESSIONS_OTHER_COLUMNS
    )
    sessions.add_column("server", no_wrap=True, min_width=width)
    for column in ("pid", "started", "ended", "exit", "events", "dropped", "state"):
        if column in ("pid", "exit", "events", "dropped"):
            sessions.add_column(column, justify="right")
        else:
            sessions.add_column(column)
    for name, s in zip(session_names, status["sessions"], strict=True):
        state = "live" if s["live"] else ("ended" if s["ended_ns"] is not None else "gone")
        if s["last_error"]:
            state += f" (last error: {s['last_error']})"
        sessions.add_row(
            escape(name),
            "-" if s["pid"] is None else str(s["pid"]),
            describe_when(s["started_ns"], now_ns, console.width),
            describe_when(s["ended_ns"], now_ns, console.width),
            "-" if s["exit_code"] is None else str(s["exit_code"]),
            str(s["events"]),
            str(s["dropped"]["frames"]),
            state,
        )
    console.print(sessions)


def _print_delivery(console: Any, d: dict[str, Any], api: dict[str, Any], now_ns: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="delivery", show_header=False)
    if api.get("error"):
        table.add_row("api", f"config file unreadable: {escape(api['error'])}")
    elif api.get("url") and api.get("key"):
        table.add_row("api", f"{escape(api['url'])} (key {escape(api['key'])})")
    else:
        table.add_row("api", "not configured: `km login --url URL` (events stay in the spool)")
    pending = str(d["pending"])
    if d["pending"]:
        extra = [f"oldest captured {describe_time(d['oldest_pending_ts_ns'], now_ns)}"]
        if d["pending_retried"]:
            extra.append(f"{d['pending_retried']} retried")
        pending += f" ({', '.join(extra)})"
    table.add_row("pending", pending)
    in_flight = str(d["in_flight"])
    if d["in_flight_expired"]:
        in_flight += f" ({d['in_flight_expired']} with expired leases: to be sent again)"
    table.add_row("in flight", in_flight)
    table.add_row("sent", str(d["sent"]))
    table.add_row("quarantined", str(d["quarantined"]))
    if d["breaker"]:
        breaker = d["breaker"]
        if breaker == "open" and d["breaker_until_ns"] is not None:
            breaker += f" (next try {describe_time(d['breaker_until_ns'], now_ns)})"
        breaker += f", since {describe_time(d['breaker_since_ns'], now_ns)}"
        table.add_row("circuit breaker", breaker)
    if d["paused_reason"]:
        table.add_row(
            "paused",
            f"[bold red]{escape(d['paused_reason'])}[/] "
            f"(since {describe_time(d['paused_since_ns'], now_ns)})",
        )
    if d["last_success_ns"] is not None:
        table.add_row(
            "last success",
            f"{describe_time(d['last_success_ns'], now_ns)}: "
            f"{d['last_success_events']} events to {escape(d['last_success_url'] or '?')}",
        )
    else:
        table.add_row("last success", "-")
    if d["last_error"]:
        table.add_row(
            "last error",
            f"{escape(d['last_error'])} ({describe_time(d['last_error_ns'], now_ns)})",
        )
    console.print(table)
    if d["quarantine_reasons"]:
        reasons = Table(title="quarantined events, by the server's reason")
        reasons.add_column("reason")
        reasons.add_column("events", justify="right")
        for item in d["quarantine_reasons"]:
            reasons.add_row(escape(item["reason"]), str(item["events"]))
        console.print(reasons)
