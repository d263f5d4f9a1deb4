"""`km export --format otlp`: the selected events as MCP spans (and the duration histogram),
to a file as OTLP JSON lines (stdout without -o) or to `--otlp-endpoint URL` over OTLP/HTTP."""

from __future__ import annotations

from collections.abc import Callable

from km.export.otlp import Pairer, SpanSpec
from km.export.source import ExportSource


def export_otlp(
    source: ExportSource,
    output: str | None,
    endpoint: str | None,
    show: bool,
) -> int:
    from km.export.cli import _output, progress_bar
    from km.export.otlp_sdk import JsonFileExporter, SpanWriter, http_exporters
    from km.views.cli import _err

    total = source.count_events() if show else None
    if endpoint:
        spans, metrics = http_exporters(endpoint)
        writer = SpanWriter(spans, metrics=metrics, where=endpoint)
        try:
            with progress_bar(total, "export", show) as advance:
                write_spans(source, writer.write, advance)
            writer.close()
        finally:
            spans.shutdown()  # type: ignore[no-untyped-call]
            metrics.shutdown()
        _err(f"sent {writer.sent} spans to {endpoint}")
        return 0
    with _output(output) as out:
        writer = SpanWriter(JsonFileExporter(out), metrics=out, where=output or "stdout")
        with progress_bar(total, "export", show) as advance:
            write_spans(source, writer.write, advance)
        writer.close()
    if output:
        _err(f"exported {writer.sent} spans to {output}")
    return 0


SPAN_COLUMNS = (
    "id", "session_id", "server", "direction", "ts_ns", "kind", "method", "rpc_id", "link_id",
    "payload", "tool", "status", "tokens", "risk",
)  # fmt: skip


def write_spans(
    source: ExportSource,
    write: Callable[[SpanSpec], None],
    advance: Callable[[int], None] = lambda n: None,
) -> int:
    """Every selected event through the pairer into `write`; returns the events read."""
    pairer = Pairer()
    n = 0
    for names, row in source.events(columns=SPAN_COLUMNS):
        spec = pairer.feed(dict(zip(names, row, strict=True)))
        if spec is not None:
            write(spec)
        n += 1
        if n % 1000 == 0:
            advance(1000)
    for spec in pairer.finish():
        write(spec)
    return n
