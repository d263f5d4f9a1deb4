"""`km export [FILTER] --format jsonl|otlp|sarif [-o FILE]` and `km import FILE [--api]`.

Exit codes: 0 done; 1 a spool, file or endpoint problem (one line on stderr); 2 a bad command
line or filter. An export to a file is written to `FILE.partial` and renamed when complete, so a
file named FILE is always whole; an interrupted one stays as `.partial` and says so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO

from km import __version__
from km.arguments import CommandParser
from km.errors import InputError, UsageError
from km.insight.filter import Filter
from km.settings import Settings
from km.views.cli import _entry, _err  # one error and exit-code shell for km's views

FORMATS = ("jsonl", "otlp", "sarif")


def _filter(words: list[str]) -> Filter | None:
    from km.views.cli import _filter as parse_words

    return parse_words(words)


def _spool(settings: Settings, path: str | None) -> str:
    if path:
        settings.set("spool_path", path, "--spool")
    return settings.resolve_spool_path()


@contextmanager
def progress_bar(total: int | None, what: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when `enabled` (stderr is a terminal); yields `advance`."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=total)
        pending = 0

        def advance(n: int) -> None:
            nonlocal pending
            pending += n
            if pending >= 5000:
                bar.advance(task, pending)
                pending = 0

        yield advance
        bar.advance(task, pending)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# -- km export -----------------------------------------------------------------------------------


def _export_parser() -> CommandParser:
    p = CommandParser(
        prog="km export",
        description="Export the events FILTER selects (all without one): JSONL (lossless, for "
        "km import), OTLP traces (OpenTelemetry MCP conventions) or SARIF findings.",
    )
    p.add_argument("filter", nargs="*", metavar="FILTER")
    p.add_argument("--format", choices=FORMATS, default="jsonl")
    p.add_argument("-o", "--output", metavar="FILE", help="write FILE instead of stdout")
    p.add_argument(
        "--otlp-endpoint", metavar="URL", help="otlp: send to this OTLP/HTTP endpoint instead"
    )
    p.add_argument("--spool", metavar="PATH", help="spool database to read (KM_SPOOL)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def run_export(args: list[str], settings: Settings) -> int:
    return _entry(lambda: _export(args, settings))


def _export(args: list[str], settings: Settings) -> int:
    from km.export.source import ExportSource
    from km.views.spool_read import SpoolReader

    o = _export_parser().parse_intermixed_args(args)
    flt = _filter(o.filter)
    if o.otlp_endpoint and o.format != "otlp":
        raise UsageError("--otlp-endpoint goes with --format otlp")
    reader = SpoolReader.open(_spool(settings, o.spool))
    try:
        source = ExportSource(reader, flt)
        show = _stderr_is_terminal() and not o.quiet
        if o.format == "otlp":
            from km.export.otlp_cli import export_otlp

            return export_otlp(source, o.output, o.otlp_endpoint, show)
        if o.format == "sarif":
            from km.export.sarif_cli import export_sarif

            with _output(o.output) as out:
                results = export_sarif(source, out)
            if o.output:
                _err(f"exported {results} findings to {o.output}")
            return 0
        with _output(o.output) as out:
            counts = write_jsonl(source, out, show)
        if o.output:
            sessions, events, findings = counts
            _err(
                f"exported {events} events, {sessions} sessions, {findings} findings to {o.output}"
            )
        return 0
    finally:
        reader.close()


def write_jsonl(source: Any, out: BinaryIO, show: bool) -> tuple[int, int, int]:
    """The whole export, streamed; returns (sessions, events, findings) written."""
    from km.export import jsonl

    flt = source.flt
    out.write(jsonl.header(__version__, flt.text if flt is not None else None))
    sessions: set[str] = set()
    for names, row in source.sessions():
        sessions.add(row[names.index("session_id")])
        out.write(jsonl.encode_row(jsonl.SESSION, names, row))
    events = 0
    total = source.count_events() if show else None
    with progress_bar(total, "export", show) as advance:
        write = out.write
        encoders: dict[int, jsonl.RowEncoder] = {}
        for names, row in source.events():
            encode = encoders.get(id(names))
            if encode is None:
                encode = encoders[id(names)] = jsonl.RowEncoder(jsonl.EVENT, names)
            write(encode(row))
            events += 1
            if events % 1000 == 0:
                advance(1000)
    findings = 0
    for names, row in source.findings(sessions if flt is not None else None):
        out.write(jsonl.encode_row(jsonl.FINDING, names, row))
        findings += 1
    out.write(jsonl.end(len(sessions), events, findings))
    return len(sessions), events, findings


@contextmanager
def _output(path: str | None) -> Iterator[BinaryIO]:
    """stdout, or FILE written as FILE.partial and renamed once complete."""
    if not path:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = path + ".partial"
    try:
        f: IO[bytes] = open(partial, "wb", buffering=1 << 20)  # noqa: SIM115
    except OSError as exc:
        raise InputError(path, f"cannot write: {exc.strerror}") from None
    try:
        yield f  # type: ignore[misc]
        f.close()
        os.replace(partial, path)
    except BaseException:
        f.close()
        _err(f"export interrupted: what was written is in {partial} (incomplete: no end record)")
        raise


# -- km import -----------------------------------------------------------------------------------


def _import_parser() -> CommandParser:
    p = CommandParser(
        prog="km import",
        description="Put a JSONL export (km export) back into a spool, or send it to the API. "
        "The whole file is checked first: a bad line changes nothing.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--api", action="store_true", help="send the events to the Kilometers API")
    p.add_argument("--spool", metavar="PATH", help="spool database to import into (KM_SPOOL)")
    p.add_argument(
        "--partial",
        action="store_true",
        help="import what comes before a bad line (the import is then marked partial)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def run_import(args: list[str], settings: Settings) -> int:
    return _entry(lambda: _import(args, settings))


def _import(args: list[str], settings: Settings) -> int:
    from km.export.importer import ImportResult, check_file, describe, read_records
    from km.export.jsonl import JsonlError

    o = _import_parser().parse_intermixed_args(args)
    try:
        size = os.path.getsize(o.file)
        handle = open(o.file, "rb", buffering=1 << 20)  # noqa: SIM115
    except OSError as exc:
        raise InputError(o.file, f"cannot read: {exc.strerror}") from None
    show = _stderr_is_terminal() and not o.quiet
    result = ImportResult()
    with handle:
        bad: JsonlError | None = None
        try:
            with progress_bar(size, "check ", show) as advance:
                check_file(handle, on_bytes=advance)
        except JsonlError as exc:
            if not o.partial:
                why = f"{exc}; nothing imported (--partial imports the lines before it)"
                raise InputError(o.file, why) from None
            bad = exc
        handle.seek(0)
        records = read_records(handle)
        if bad is not None:
            records = _until(records, bad.line)
        if o.api:
            from km.export.api_import import send_to_api

            where = send_to_api(records, settings, result)
        else:
            from km.export.importer import SpoolImporter

            where = _spool(settings, o.spool)
            importer = SpoolImporter(where, settings.spool_max_bytes)
            try:
                importer.write(records, result)
            finally:
                importer.close()
    if bad is not None:
        _err(f"PARTIAL import: {describe(result, where)}; stopped at {o.file} {bad}")
        return 1
    _err(describe(result, where))
    return 0


def _until(records: Iterator[Any], line: int) -> Iterator[Any]:
    """The records before the first bad line (already found by the check)."""
    try:
        yield from records
    except Exception as exc:
        if getattr(exc, "line", None) != line:
            raise
