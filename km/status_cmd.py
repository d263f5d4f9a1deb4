"""`km status`: what the spool holds, as tables (rich) or as JSON (`--json`)."""

from __future__ import annotations

import sys
import time
from typing import Any

from km.errors import SpoolError
from km.settings import Settings

EXAMPLE = "km python -m mcp_server_time"


def run_status(settings: Settings, as_json: bool) -> int:
    """Print the spool's status; the exit code (0, or the spool error's when it is unreadable)."""
    from km.spool.status import read_status

    path = settings.resolve_spool_path()
    try:
        status = read_status(path)
    except SpoolError as exc:
        sys.stderr.write(f"km: {exc}\n")
        return exc.exit_code
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    _print_tables(status, time.time_ns())
    return 0


def describe_time(ns: int | None, now_ns: int) -> str:
    """`3 s ago (2026-11-22 03:04:34)`, or `-` for no time."""
    if ns is None:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))
    return f"{describe_age(now_ns - ns)} ({stamp})"


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


def _print_tables(status: dict[str, Any], now_ns: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    path = status["path"]
    if not status["exists"]:
        console.print(f"No spool yet at {path}. Run an MCP server through km, e.g. `{EXAMPLE}`.")
        return
    if not status["events_total"] and not status["sessions_total"]:
        console.print(
            f"The spool at {path} is empty. Run an MCP server through km, e.g. `{EXAMPLE}`."
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

    servers = Table(title="events by server")
    servers.add_column("server")
    servers.add_column("events", justify="right")
    for server, count in status["events_by_server"].items():
        servers.add_row(server, str(count))
    console.print(servers)

    shown, total = len(status["sessions"]), status["sessions_total"]
    title = "sessions" if shown == total else f"sessions (latest {shown} of {total})"
    sessions = Table(title=title)
    for column in ("server", "pid", "started", "ended", "exit", "events", "dropped", "state"):
        if column in ("pid", "exit", "events", "dropped"):
            sessions.add_column(column, justify="right")
        else:
            sessions.add_column(column)
    for s in status["sessions"]:
        state = "live" if s["live"] else ("ended" if s["ended_ns"] is not None else "gone")
        if s["last_error"]:
            state += f" (last error: {s['last_error']})"
        sessions.add_row(
            s["server"],
            str(s["pid"]),
            describe_time(s["started_ns"], now_ns),
            describe_time(s["ended_ns"], now_ns),
            "-" if s["exit_code"] is None else str(s["exit_code"]),
            str(s["events"]),
            str(s["dropped"]["frames"]),
            state,
        )
    console.print(sessions)
