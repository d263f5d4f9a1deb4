"""`km tail`, `km sessions`, `km show`: argument parsing and the exit codes.

Exit codes: 0 done; 1 an unknown session, an unreadable spool or API; 2 a bad command line or
a malformed filter (with the filter and a caret under the column on stderr).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from km.arguments import CommandParser, ParserExit
from km.errors import KmError
from km.insight.filter import Filter, FilterError, parse
from km.settings import Settings

DEFAULT_SESSIONS = 20  # a screenful; --limit for more


def _err(message: str) -> None:
    sys.stderr.write(f"km: {message}\n")
    sys.stderr.flush()


def _entry(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except ParserExit as done:
        return done.status
    except FilterError as exc:
        _err(str(exc))
        sys.stderr.write(exc.caret() + "\n")
        return exc.exit_code
    except KmError as exc:
        _err(str(exc))
        return exc.exit_code
    except BrokenPipeError:  # `km tail | head`: the reader is gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


_NEGATED = "\x00"  # marks a filter word that starts with `-` while argparse reads the line


def _parse(parser: CommandParser, args: list[str]) -> Any:
    """argparse, except that a word such as `-tool:x` or `-"text"` (not one of the command's
    options) stays a filter word, in its place."""
    known = {s for a in parser._actions for s in a.option_strings}
    takes_value = {s for a in parser._actions if a.nargs != 0 for s in a.option_strings}
    marked: list[str] = []
    after_value = False
    for word in args:
        name = word.split("=", 1)[0]
        if after_value or word == "--" or not word.startswith("-") or name in known or word == "-":
            marked.append(word)
            after_value = not after_value and word in takes_value
            continue
        marked.append(_NEGATED + word)
    options = parser.parse_intermixed_args(marked)
    for key in ("filter", "session"):
        value = getattr(options, key, None)
        if isinstance(value, list):
            setattr(options, key, [w.replace(_NEGATED, "", 1) for w in value])
        elif isinstance(value, str):
            setattr(options, key, value.replace(_NEGATED, "", 1))
    return options


def _filter(words: list[str], *extra: str) -> Filter | None:
    text = " ".join([*(w for w in words), *extra]).strip()
    if not text:
        return None
    local = datetime.now().astimezone().tzinfo  # ISO times without a zone are local times
    assert local is not None
    return parse(text, now_ns=time.time_ns(), tz=local)


def _width(stream: Any) -> int | None:
    """The terminal's width, or None when `stream` is not a terminal (plain, uncut output)."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _spool(settings: Settings, path: str | None) -> str:
    if path:
        settings.set("spool_path", path, "--spool")
    return settings.resolve_spool_path()


# -- km tail -------------------------------------------------------------------------------------


def _tail_parser() -> CommandParser:
    p = CommandParser(
        prog="km tail",
        description="Follow captured MCP traffic live: one line per exchange "
        "(see docs/filters.md for FILTER).",
    )
    p.add_argument("filter", nargs="*", metavar="FILTER")
    p.add_argument("-n", type=int, default=10, metavar="N", help="show the last N first (10)")
    p.add_argument("--since", metavar="TIME", help="from TIME on (1h, 30m, 2026-12-01T15:00)")
    p.add_argument("--session", metavar="ID", help="one session (its id or a unique prefix)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.add_argument("--spool", metavar="PATH", help="spool database to read (KM_SPOOL)")
    p.add_argument("--hold", type=float, default=0.5, metavar="S", help=argparse_hidden())
    p.add_argument("--exit-when-idle", action="store_true", help=argparse_hidden())
    return p


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def run_tail(args: list[str], settings: Settings) -> int:
    return _entry(lambda: _tail(args, settings))


def _tail(args: list[str], settings: Settings) -> int:
    from km.views.spool_read import SpoolReader
    from km.views.tail import Output, TailOptions, follow, is_terminal

    o = _parse(_tail_parser(), args)
    path = _spool(settings, o.spool)
    extra = []
    if o.since:
        extra.append(f"since:{o.since}")
    flt = _filter(o.filter, *extra)
    if o.session:
        reader = SpoolReader.open(path)
        try:
            session_id = reader.session(o.session).session_id
        finally:
            reader.close()
        flt = _filter([*o.filter, *extra], f'session:"{session_id}"')
    options = TailOptions(
        flt,
        last=max(0, o.n),
        from_start=bool(o.since) or (flt is not None and "ts_ns" in flt.columns()),
        as_json=o.json,
        hold_s=max(0.0, o.hold),
        exit_when_idle=o.exit_when_idle,
    )
    color = "NO_COLOR" not in os.environ  # https://no-color.org
    out = Output(sys.stdout, o.json, is_terminal(sys.stdout), color=color)
    return follow(lambda: SpoolReader.open(path), options, out)


# -- km sessions ---------------------------------------------------------------------------------


def _sessions_parser() -> CommandParser:
    p = CommandParser(
        prog="km sessions",
        description="List captured sessions, newest first: those with an event FILTER selects.",
    )
    p.add_argument("filter", nargs="*", metavar="FILTER")
    p.add_argument(
        "--limit", type=int, default=DEFAULT_SESSIONS, metavar="N", help="at most N (20)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--api", action="store_true", help="read the Kilometers API, not the spool")
    p.add_argument("--spool", metavar="PATH", help="spool database to read (KM_SPOOL)")
    return p


def run_sessions(args: list[str], settings: Settings) -> int:
    return _entry(lambda: _sessions(args, settings))


def _sessions(args: list[str], settings: Settings) -> int:
    from km.views.sessions import print_sessions

    o = _parse(_sessions_parser(), args)
    flt = _filter(o.filter)
    limit = max(1, o.limit)
    if o.api:
        from km.views.api_read import ApiReader

        sessions = ApiReader(settings).sessions(flt.text if flt else None, limit)
    else:
        sessions = list_spool_sessions(_spool(settings, o.spool), flt, limit)
    print_sessions(sessions, sys.stdout, as_json=o.json, width=_width(sys.stdout))
    return 0


def list_spool_sessions(path: str, flt: Filter | None, limit: int) -> list[dict[str, Any]]:
    from km.views.spool_read import SpoolReader

    reader = SpoolReader.open(path)
    try:
        out = []
        for s in reader.sessions(flt, limit):
            doc = _session_doc(s)
            doc.update(reader.session_stats(s.session_id))
            out.append(doc)
        return out
    finally:
        reader.close()


def _session_doc(s: Any) -> dict[str, Any]:
    import orjson

    try:
        command = orjson.loads(s.command)
    except orjson.JSONDecodeError:
        command = s.command
    return {
        "session_id": s.session_id,
        "server": s.server,
        "host": s.host,
        "command": command,
        "started_ns": s.started_ns,
        "ended_ns": s.ended_ns,
        "last_capture_ns": s.last_capture_ns,
        "exit_code": s.exit_code,
        "dropped_frames": s.dropped_frames,
        "dropped_bytes": s.dropped_bytes,
    }


# -- km show -------------------------------------------------------------------------------------


def _show_parser() -> CommandParser:
    p = CommandParser(
        prog="km show",
        description="One session's timeline: each exchange on a line, findings and drops in place.",
    )
    p.add_argument("session", metavar="SESSION", help="a session id or a unique prefix of one")
    p.add_argument("filter", nargs="*", metavar="FILTER", help="only exchanges FILTER selects")
    p.add_argument("--full", action="store_true", help="payloads too, pretty-printed")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.add_argument("--api", action="store_true", help="read the Kilometers API, not the spool")
    p.add_argument("--spool", metavar="PATH", help="spool database to read (KM_SPOOL)")
    return p


def run_show(args: list[str], settings: Settings) -> int:
    return _entry(lambda: _show(args, settings))


def _show(args: list[str], settings: Settings) -> int:
    from km.views.sessions import print_show, timeline

    o = _parse(_show_parser(), args)
    flt = _filter(o.filter)
    width = _width(sys.stdout)
    if o.api:
        from km.views.api_read import ApiReader

        api = ApiReader(settings)
        session = api.session(o.session)
        rows = api.events(session["session_id"], flt.text if flt else None)
        findings = api.findings(session["session_id"])
        print_show(
            session, timeline(rows), findings, sys.stdout, full=o.full, as_json=o.json,
            width=width,
        )  # fmt: skip
        return 0
    from km.views.spool_read import SpoolReader

    reader = SpoolReader.open(_spool(settings, o.spool))
    try:
        found = reader.session(o.session)
        session = _session_doc(found)
        findings = reader.findings(found.session_id)
        events = reader.session_events(found.session_id, flt, with_payload=o.full)
        print_show(
            session, timeline(events), findings, sys.stdout, full=o.full, as_json=o.json,
            width=width,
        )  # fmt: skip
    finally:
        reader.close()
    return 0
