"""`km tools scan [FILE|-] [--json] [--fail-on SEVERITY]`: poisoning findings over tool
definitions read from a file or stdin, no server needed (for CI and for vetting a server
before installing it).

Accepts a `tools/list` result (`{"tools": [...]}`), a whole JSON-RPC response
(`{"result": {"tools": [...]}}`) or a JSON array of tool definitions. Exit status: 1 when a
finding at or above `--fail-on` (default high) exists, 0 otherwise, 2 on a usage error or
unreadable / invalid input. Imports stay light: the JSON path never loads rich."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from km.arguments import CommandParser, ParserExit
from km.errors import InputError, UsageError
from km.insight.findings import SEVERITIES, Finding, at_least, severity_rank
from km.settings import Settings

DEEP_STACK = 512 * 1024 * 1024  # a parser thread's stack for inputs nested past 1000 levels
DEEP_LIMIT = 200_000  # its recursion limit


def _parser() -> CommandParser:
    parser = CommandParser(
        prog="km tools scan",
        description="Scan MCP tool definitions for poisoning (no server needed).",
    )
    parser.add_argument("file", nargs="?", default="-", help="a tools/list JSON file, - for stdin")
    parser.add_argument("--json", action="store_true", help="print findings as JSON")
    parser.add_argument(
        "--fail-on",
        default="high",
        choices=SEVERITIES,
        metavar="SEVERITY",
        help="exit 1 when a finding is at least this severe (default high; "
        + ", ".join(SEVERITIES)
        + ")",
    )
    return parser


def run_scan(args: list[str], settings: Settings, stdin: Any = None, stdout: Any = None) -> int:
    try:
        options = _parser().parse_args(args)
    except ParserExit as done:
        return done.status
    source = "stdin" if options.file == "-" else options.file
    raw = _read(options.file, stdin if stdin is not None else sys.stdin)
    tools = tools_of(loads(raw, source), source)

    from km.insight.poisoning import scan_tools

    findings = scan_tools(tools)
    out: TextIO = stdout if stdout is not None else sys.stdout
    if options.json:
        doc = {"findings": [f.to_json() for f in findings], "tools": len(tools)}
        out.write(json.dumps(doc, ensure_ascii=True, indent=1) + "\n")
    else:
        _print_table(findings, len(tools), out)
    return 1 if any(at_least(f.severity, options.fail_on) for f in findings) else 0


def _read(path: str, stdin: Any) -> bytes:
    if path == "-":
        if stdin.isatty():
            raise UsageError(
                "km tools scan: give a FILE, or pipe a tools/list result into stdin "
                "(km tools scan - < tools.json)"
            )
        data: bytes = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
        return data
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None


def loads(raw: bytes, source: str) -> Any:
    """Parse JSON, or raise InputError naming the problem in one line. Inputs nested deeper
    than the interpreter's recursion limit are parsed again on a thread with a large stack."""
    if not raw.strip():
        raise InputError(source, "empty input (expected a tools/list result as JSON)")
    try:
        return json.loads(raw)
    except RecursionError:
        return _loads_deep(raw, source)
    except UnicodeDecodeError:
        raise InputError(source, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            source, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _loads_deep(raw: bytes, source: str) -> Any:
    result: list[Any] = []
    failure: list[str] = []

    def parse() -> None:
        try:
            result.append(json.loads(raw))
        except RecursionError:
            failure.append(f"nested deeper than {DEEP_LIMIT:,} levels")
        except ValueError as exc:
            failure.append(f"invalid JSON: {exc}")

    old_limit, old_stack = sys.getrecursionlimit(), threading.stack_size()
    try:
        sys.setrecursionlimit(DEEP_LIMIT)
        threading.stack_size(DEEP_STACK)
        worker = threading.Thread(target=parse, name="km-deep-json")
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if failure or not result:
        raise InputError(source, failure[0] if failure else "cannot parse")
    return result[0]


def tools_of(doc: Any, source: str) -> list[Any]:
    """The tool definitions in `doc`: a tools/list result, a JSON-RPC response or an array."""
    if isinstance(doc, dict) and isinstance(doc.get("result"), dict):
        doc = doc["result"]
    if isinstance(doc, dict) and "tools" in doc:
        doc = doc["tools"]
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and "error" in doc:
        raise InputError(source, "a JSON-RPC error response, not a tools/list result")
    raise InputError(
        source,
        'expected a tools/list result ({"tools": [...]}), a JSON-RPC response with one, '
        "or an array of tool definitions",
    )


def _print_table(findings: list[Finding], tool_count: int, out: TextIO) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from km.insight.text import visible

    console = Console(file=out, width=min(Console(file=out).width, 100), highlight=False)
    if not findings:
        console.print(f"no poisoning findings in {tool_count} tool definition(s)")
        return
    ordered = sorted(findings, key=lambda f: -severity_rank(f.severity))
    table = Table(title=f"poisoning findings in {tool_count} tool definition(s)", expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("tool", overflow="fold", max_width=18)
    table.add_column("rule", no_wrap=True)
    table.add_column("finding", overflow="fold")
    colour = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
    for f in ordered:
        style = colour.get(f.severity, "")
        where = f"in {visible(f.field or '-', 60)}"
        if f.span is not None and f.span != (0, 0):
            where += f" [{f.span[0]}:{f.span[1]}]"
        text = escape(visible(f.message, 160)) + "\n[dim]" + escape(where) + "[/]"
        if f.excerpt:
            text += "\n" + escape(f.excerpt)
        table.add_row(
            f"[{style}]{f.severity}[/]" if style else f.severity,
            escape(visible(f.tool or "-", 40)),
            f.rule,
            text,
        )
    console.print(table)
    counts = {s: sum(1 for f in findings if f.severity == s) for s in reversed(SEVERITIES)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(f"{len(findings)} finding(s): {summary}")
