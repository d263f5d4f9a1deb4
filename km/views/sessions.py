"""`km sessions` and `km show`: the session list and one session's timeline, printed.

Data comes in as plain dicts (sessions) and `Row`s (events) from the spool or the API; this
module only lays them out: a table fitted to the terminal (names cut in the middle only when
they cannot fit), plain padded text when piped, or JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from km.terminal import safe
from km.views import fmt, render
from km.views.exchange import Line, Pairer, Row

SESSION_COLUMNS = (
    fmt.Column("started", 19, 11),
    fmt.Column("dur", 6, 3, right=True),
    fmt.Column("server", 24, 8),
    fmt.Column("host", 16, 0),
    fmt.Column("calls", 5, 5, right=True),
    fmt.Column("errs", 4, 4, right=True),
    fmt.Column("p50", 6, 6, right=True),
    fmt.Column("p95", 6, 6, right=True),
    fmt.Column("tokens", 6, 6, right=True),
    fmt.Column("find", 4, 4, right=True),
    fmt.Column("session", 36, 8, first=True, keep_start=True),
)
SHOW_HOLD_EVENTS = 5000  # a request waits this many later events for its reply in `km show`


def session_json(session: dict[str, Any]) -> dict[str, Any]:
    """What `--json` prints for a session: the stored fields plus readable times."""
    out = dict(session)
    out["started"] = fmt.iso(session["started_ns"])
    end = session.get("ended_ns") or session.get("last_ts_ns") or session.get("last_capture_ns")
    out["duration_ns"] = end - session["started_ns"] if end else None
    return out


def session_cells(s: dict[str, Any], wide_time: bool) -> list[str]:
    end = s.get("ended_ns") or s.get("last_ts_ns") or s.get("last_capture_ns")
    started = fmt.stamp(s["started_ns"]) if wide_time else fmt.stamp(s["started_ns"])[5:16]
    return [
        started,
        fmt.duration(end - s["started_ns"]) if end else "-",
        safe(s["server"], markup=False),
        safe(s.get("host") or "-", markup=False),
        fmt.count(s.get("calls")),
        fmt.count(s.get("errors")),
        fmt.latency(s.get("latency_p50_us")),
        fmt.latency(s.get("latency_p95_us")),
        fmt.count(s.get("tokens")),
        fmt.count(s.get("findings")),
        safe(s["session_id"], markup=False),
    ]


def print_sessions(
    sessions: list[dict[str, Any]], stream: IO[str], *, as_json: bool, width: int | None
) -> None:
    if as_json:
        stream.write(
            orjson.dumps([session_json(s) for s in sessions], option=orjson.OPT_INDENT_2).decode()
            + "\n"
        )
        return
    if not sessions:
        stream.write("no sessions match\n" if width is None else "No sessions match.\n")
        return
    rows = [session_cells(s, wide_time=True) for s in sessions]
    wanted = [
        fmt.Column(
            c.name,
            max(len(c.name), *(len(r[i]) for r in rows)),
            c.least,
            c.right,
            c.first,
            c.keep_start,
        )
        for i, c in enumerate(SESSION_COLUMNS)
    ]
    widths = fmt.fit(wanted, width)
    if width is not None and widths[0] < 19:  # no room for seconds and year: `12-06 15:04`
        rows = [session_cells(s, wide_time=False) for s in sessions]
        wanted[0] = fmt.Column("started", 11, 11)
        widths = fmt.fit(wanted, width)
    lines = [_layout([c.name for c in wanted], widths, wanted)]
    lines += [_layout(r, widths, wanted) for r in rows]
    if width is None:
        stream.write("\n".join(lines) + "\n")
        return
    from rich.console import Console

    console = Console(file=stream, highlight=False, markup=False, emoji=False, width=width)
    console.print(lines[0], style="bold", no_wrap=True, overflow="crop")
    for line, s in zip(lines[1:], sessions, strict=True):
        style = "red" if (s.get("errors") or 0) > 0 else ""
        console.print(line, style=style, no_wrap=True, overflow="crop")


def _layout(parts: list[str], widths: list[int], columns: list[fmt.Column]) -> str:
    return " ".join(
        fmt.cell(p, w, c.right, c.keep_start)
        for p, w, c in zip(parts, widths, columns, strict=True)
        if w > 0
    ).rstrip()


# -- km show -------------------------------------------------------------------------------------


def timeline(rows: Iterable[tuple[Row, bool]]) -> Iterator[Line]:
    """The session's lines in order: each exchange on one line (see `Pairer`)."""
    pairer = Pairer(SHOW_HOLD_EVENTS)
    for n, (row, selected) in enumerate(rows):
        pairer.feed(row, selected, n)
        yield from pairer.ready(n)
    yield from pairer.flush()


def print_show(
    session: dict[str, Any],
    lines: Iterable[Line],
    findings: list[dict[str, Any]],
    stream: IO[str],
    *,
    full: bool,
    as_json: bool,
    width: int | None,
) -> int:
    """Print the session's header and timeline; returns the number of lines shown."""
    by_event: dict[str, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for f in findings:
        if f.get("event_id"):
            by_event.setdefault(f["event_id"], []).append(f)
        else:
            loose.append(f)
    loose.sort(key=lambda f: f.get("ts_ns") or 0)
    if as_json:
        return _show_json(session, lines, by_event, loose, stream, full)
    terminal = width is not None
    # One session, one server (named in the header): its column's room goes to the names.
    columns = [c if c.name != "server" else fmt.Column("server", 0, 0) for c in render.TAIL_COLUMNS]
    widths = fmt.fit(columns, width) if width is not None else []

    def out(text: str, style: str = "") -> None:
        if terminal and style:
            text = render.paint(text, style)
        stream.write(text + "\n")

    for text in _header(session):
        out(text, "bold")
    shown = 0
    for line in lines:
        first = line.first
        while loose and (loose[0].get("ts_ns") or 0) <= first.ts_ns:
            out(_finding_text(loose.pop(0)), "bold yellow")
        if terminal:
            stream.write(render.styled(line, widths) + "\n")
        else:
            stream.write(render.plain(line) + "\n")
        shown += 1
        for row in (line.request, line.reply, line.event):
            if row is None:
                continue
            for f in by_event.get(row.id, ()):
                out(_finding_text(f), "bold yellow")
        if full:
            for row in (line.request, line.reply, line.event):
                if row is not None and row.payload is not None:
                    for text in _payload_lines(row):
                        out(text, "dim" if row.direction == "c2s" else "")
    for f in loose:
        out(_finding_text(f), "bold yellow")
    if shown == 0:
        out("(no events match)")
    return shown


def _header(s: dict[str, Any]) -> list[str]:
    end = s.get("ended_ns") or s.get("last_ts_ns") or s.get("last_capture_ns")
    command = s.get("command")
    if isinstance(command, list):
        command = " ".join(str(c) for c in command)
    lines = [
        f"session {safe(s['session_id'], markup=False)}  server {safe(s['server'], markup=False)}"
        f"  host {safe(s.get('host') or '-', markup=False)}",
        f"started {fmt.stamp(s['started_ns'])}  duration "
        f"{fmt.duration(end - s['started_ns']) if end else '-'}"
        + (f"  exit {s['exit_code']}" if s.get("exit_code") is not None else ""),
    ]
    if command:
        lines.append(f"command {safe(command, markup=False)}")
    if s.get("dropped_frames"):
        lines.append(
            f"km dropped {s['dropped_frames']} frames ({fmt.size(s.get('dropped_bytes') or 0)})"
            " of this session: it could not keep up"
        )
    return lines


def _finding_text(f: dict[str, Any]) -> str:
    tool = f" [{f['tool']}]" if f.get("tool") else ""
    return safe(
        f"  ! {str(f.get('severity', '')).upper()} {f.get('rule', '')} {f.get('kind', '')}{tool}:"
        f" {f.get('message', '')}",
        markup=False,
    )


def _payload_lines(row: Row) -> list[str]:
    payload = row.payload or b""
    try:
        text = orjson.dumps(orjson.loads(payload), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = f"<{len(payload)} bytes, not UTF-8> {payload[:200]!r}"
    if row.truncated:
        text += f"\n<truncated: {row.size} bytes in all>"
    arrow = render.ARROWS.get(row.direction, "?")
    return [f"    {arrow} {safe(part, markup=False)}" for part in text.splitlines()]


def _show_json(
    session: dict[str, Any],
    lines: Iterable[Line],
    by_event: dict[str, list[dict[str, Any]]],
    loose: list[dict[str, Any]],
    stream: IO[str],
    full: bool,
) -> int:
    stream.write(orjson.dumps({"type": "session", **session_json(session)}).decode() + "\n")
    shown = 0
    for line in lines:
        doc = render.as_json(line)
        rows = [r for r in (line.request, line.reply, line.event) if r is not None]
        doc["findings"] = [f for r in rows for f in by_event.get(r.id, ())]
        if full:
            for name, row in (
                ("request", line.request),
                ("reply", line.reply),
                ("event", line.event),
            ):
                if row is not None and row.payload is not None:
                    doc[f"{name}_payload"] = _payload_value(row.payload)
        stream.write(orjson.dumps(doc).decode() + "\n")
        shown += 1
    for f in loose:
        stream.write(orjson.dumps({"type": "finding", **f}).decode() + "\n")
    return shown


def _payload_value(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload.decode("utf-8", "replace")
