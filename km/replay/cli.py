"""`km replay SESSION [--ignore PATH]... [--timeout S] [--] <server command>`.

Exit codes: 0 every answer matches the captured one; 1 some differ (or never came); 2 a bad
command line, an unknown session; 127/126 a server command that cannot start.
"""

from __future__ import annotations

import sys

from km.arguments import CommandParser, ParserExit
from km.errors import KmError, UsageError
from km.settings import Settings


def _parser() -> CommandParser:
    p = CommandParser(
        prog="km replay",
        description="Send a captured session's client messages, in order, to a fresh run of a "
        "server and diff its answers against the captured ones (ids and timestamps ignored).",
    )
    p.add_argument("session", metavar="SESSION", help="a session id or a unique prefix of one")
    p.add_argument(
        "--ignore", action="append", default=[], metavar="PATH",
        help="a field to ignore, as a dotted path (result.serverInfo.version; * = any key)",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per reply (30)")
    p.add_argument("--spool", metavar="PATH", help="spool database to read (KM_SPOOL)")
    return p


_VALUED = ("--ignore", "--timeout", "--spool")


def split_command(args: list[str]) -> tuple[list[str], list[str]]:
    """(km replay's own arguments, the server command): the command follows `--`, or starts at
    the first word after SESSION that is not one of km replay's options."""
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    own: list[str] = []
    seen_session = False
    i = 0
    while i < len(args):
        word = args[i]
        if word in _VALUED:
            own += args[i : i + 2]
            i += 2
            continue
        if word.startswith("-"):
            own.append(word)
        elif not seen_session:
            own.append(word)
            seen_session = True
        else:
            return own, args[i:]
        i += 1
    return own, []


def run_replay(args: list[str], settings: Settings) -> int:
    try:
        return _replay(args, settings)
    except ParserExit as done:
        return done.status
    except KmError as exc:
        sys.stderr.write(f"km: {exc}\n")
        return exc.exit_code


def _replay(args: list[str], settings: Settings) -> int:
    from km.replay.plan import parse_path, plan
    from km.replay.run import replay
    from km.views.spool_read import SpoolReader, UnknownSession

    own, command = split_command(args)
    o = _parser().parse_args(own)
    if not command:
        raise UsageError("km replay: give the server command to replay against (after --)")
    try:
        ignore = [parse_path(p) for p in o.ignore]
    except ValueError as exc:
        raise UsageError(f"km replay: {exc}") from None
    if o.spool:
        settings.set("spool_path", o.spool, "--spool")
    reader = SpoolReader.open(settings.resolve_spool_path())
    try:
        try:
            session = reader.session(o.session)
        except UnknownSession as exc:
            raise UsageError(str(exc)) from None
        rows = [row for row, _ in reader.session_events(session.session_id, None, True)]
        steps = plan(rows)
        asks = sum(1 for r in rows if r.direction == "s2c" and r.kind == "request")
    finally:
        reader.close()
    if not steps:
        raise UsageError(f"session {session.session_id} has no client messages to replay")
    report = replay(steps, command, timeout_s=max(0.1, o.timeout), ignore=ignore, asks=asks)
    out = sys.stdout
    for outcome in report.outcomes:
        if outcome.note is not None:
            out.write(f"! {outcome.label}: {outcome.note}\n")
        elif outcome.diff is not None:
            out.write(outcome.diff + "\n")
    differ = len(report.differing)
    matched = report.requests - differ
    summary = (
        f"replayed {report.requests} requests and {report.notifications} notifications of "
        f"session {session.session_id} ({session.server}): {matched} answers match, "
        f"{differ} differ"
    )
    if report.answered:
        summary += f"; answered {report.answered} server requests"
    out.write(summary + "\n")
    out.flush()
    return 1 if differ else 0
