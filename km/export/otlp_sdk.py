"""The OpenTelemetry SDK side of the OTLP export: `SpanSpec`s become real SDK spans (one
TracerProvider per MCP server, `service.name` = km's server name), handed in batches to an
exporter: the SDK's OTLP/HTTP exporter for `--otlp-endpoint` / `KM_OTLP_ENDPOINT`, or
`JsonFileExporter` for a file (OTLP JSON, one `ExportTraceServiceRequest` a line, as the
OpenTelemetry file exporter and the collector's otlpjsonfile receiver use). The duration
histogram `mcp.client.operation.duration` goes the same way at the end.

Imported only by the export commands and the live OTLP sender, never on capture's path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import BinaryIO

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from km import __version__
from km.errors import KmError
from km.export.otlp import METRIC, METRIC_DESCRIPTION, METRIC_UNIT, SpanSpec, metric_point

BATCH = 1000  # spans an export request
TIMEOUT_S = 10.0  # one export request, the SDK's retries included
SCOPE = "km.export"
# The conventions' recommended buckets for MCP durations, in seconds.
BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_PROPAGATOR = TraceContextTextMapPropagator()


class OtlpError(KmError):
    """An OTLP endpoint did not take what was sent."""


class _Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class _LastLog(logging.Handler):
    """Keeps the exporter's last complaint (it logs instead of raising) for our one line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage().splitlines()[0][:300] if record.getMessage() else ""


def endpoint_urls(base: str) -> tuple[str, str]:
    """(traces URL, metrics URL) for an OTLP/HTTP base URL (`http://host:4318`) or a traces URL
    given whole (`.../v1/traces`)."""
    url = base.rstrip("/")
    if url.endswith("/v1/traces"):
        return url, url[: -len("/v1/traces")] + "/v1/metrics"
    return url + "/v1/traces", url + "/v1/metrics"


class JsonFileExporter(SpanExporter):
    """OTLP JSON lines: trace ids and span ids in hex, enums as numbers, per the OTLP spec."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.out.write(orjson.dumps(traces_json(spans)) + b"\n")
        return SpanExportResult.SUCCESS


def traces_json(spans: Sequence[ReadableSpan]) -> dict[str, object]:
    """One `ExportTraceServiceRequest` in OTLP JSON, spans grouped by resource."""
    groups: dict[int, tuple[Resource, list[dict[str, object]]]] = {}
    for span in spans:
        key = id(span.resource)
        if key not in groups:
            groups[key] = (span.resource, [])
        groups[key][1].append(_span_json(span))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes)},
                "scopeSpans": [{"scope": {"name": SCOPE, "version": __version__}, "spans": out}],
            }
            for resource, out in groups.values()
        ]
    }


def _span_json(span: ReadableSpan) -> dict[str, object]:
    ctx = span.context
    assert ctx is not None
    doc: dict[str, object] = {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "name": span.name,
        "kind": span.kind.value + 1,  # the SDK counts from INTERNAL=0, OTLP from UNSPECIFIED=0
        "startTimeUnixNano": str(span.start_time),
        "endTimeUnixNano": str(span.end_time),
        "attributes": _attributes(span.attributes or {}),
        "flags": 0x100
        | int(ctx.trace_flags)
        | (0x200 if span.parent and span.parent.is_remote else 0),
    }
    if span.parent is not None:
        doc["parentSpanId"] = f"{span.parent.span_id:016x}"
    state = ctx.trace_state.to_header() if ctx.trace_state else ""
    if state:
        doc["traceState"] = state
    if span.status.status_code is StatusCode.ERROR:
        doc["status"] = {"code": 2, "message": span.status.description or ""}
    return doc


def _attributes(attrs: object) -> list[dict[str, object]]:
    # The SDK's BoundedAttributes iterates under a lock, slowly; its plain dict when it has one.
    items: dict[str, object] = getattr(attrs, "_dict", None) or dict(attrs)  # type: ignore[call-overload]
    out: list[dict[str, object]] = []
    for key, value in items.items():
        kind = type(value)
        if kind is str and key in _REPEATING:  # low-cardinality values: one shared object each
            entry = _MEMO.get((key, value))
            if entry is None:
                if len(_MEMO) > 10_000:
                    _MEMO.clear()
                entry = _MEMO[(key, value)] = {"key": key, "value": {"stringValue": value}}
            out.append(entry)
            continue
        if kind is str:
            out.append({"key": key, "value": {"stringValue": value}})
        elif kind is bool:
            out.append({"key": key, "value": {"boolValue": value}})
        elif kind is int:
            out.append({"key": key, "value": {"intValue": str(value)}})
        elif kind is float:
            out.append({"key": key, "value": {"doubleValue": value}})
        else:
            out.append({"key": key, "value": {"stringValue": str(value)}})
    return out


_REPEATING = frozenset({
    "mcp.method.name", "mcp.session.id", "network.transport", "mcp.protocol.version",
    "gen_ai.tool.name", "gen_ai.operation.name", "gen_ai.prompt.name", "error.type",
    "rpc.response.status_code", "km.direction",
})  # fmt: skip
_MEMO: dict[tuple[str, object], dict[str, object]] = {}


class SpanWriter:
    """Turns specs into SDK spans and exports them `BATCH` at a time; `close()` exports the
    rest and the duration histogram. An exporter failure raises `OtlpError` (what was sent
    before stays sent; nothing in the spool changes)."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        metrics: OTLPMetricExporter | BinaryIO | None = None,
        where: str = "",
        batch: int = BATCH,
    ) -> None:
        self.exporter = exporter
        self.where = where
        self.batch = batch
        self.sent = 0
        self._collect = _Collect()
        self._tracers: dict[str, Tracer] = {}
        self._metrics = metrics
        self._reader = InMemoryMetricReader(
            preferred_temporality={_histogram_type(): AggregationTemporality.CUMULATIVE}
        )
        view = View(
            instrument_name=METRIC,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=BUCKETS),
        )
        self._meters = MeterProvider(
            metric_readers=[self._reader],
            resource=Resource.create({"service.name": "km"}),
            views=[view],
        )
        self._histogram = self._meters.get_meter(SCOPE, __version__).create_histogram(
            METRIC, unit=METRIC_UNIT, description=METRIC_DESCRIPTION
        )
        self._log = _LastLog()
        for name in ("opentelemetry.exporter", "opentelemetry.sdk"):
            logger = logging.getLogger(name)
            logger.addHandler(self._log)
            logger.propagate = False

    def _tracer(self, server: str) -> Tracer:
        tracer = self._tracers.get(server)
        if tracer is None:
            provider = TracerProvider(
                sampler=ALWAYS_ON,
                resource=Resource.create({"service.name": server, "service.namespace": "mcp"}),
            )
            provider.add_span_processor(self._collect)
            tracer = self._tracers[server] = provider.get_tracer(SCOPE, __version__)
        return tracer

    def write(self, spec: SpanSpec) -> None:
        context: Context | None = None
        if spec.traceparent:
            carrier = {"traceparent": spec.traceparent}
            if spec.tracestate:
                carrier["tracestate"] = spec.tracestate
            context = _PROPAGATOR.extract(carrier)
        span = self._tracer(spec.server).start_span(
            spec.name,
            context=context,
            kind=SpanKind.CLIENT,
            attributes=spec.attributes,
            start_time=spec.start_ns,
        )
        if spec.failed:
            span.set_status(Status(StatusCode.ERROR, spec.error))
        span.end(end_time=spec.end_ns)
        point = metric_point(spec)
        if point is not None and self._metrics is not None:
            self._histogram.record(point[0], point[1])
        if len(self._collect.spans) >= self.batch:
            self.flush()

    def flush(self) -> None:
        spans, self._collect.spans = self._collect.spans, []
        if not spans:
            return
        if self.exporter.export(spans) is not SpanExportResult.SUCCESS:
            raise OtlpError(self._failure(f"{len(spans)} spans"))
        self.sent += len(spans)

    def close(self) -> None:
        try:
            self.flush()
            self._export_metrics()
        finally:
            self._meters.shutdown()
            for name in ("opentelemetry.exporter", "opentelemetry.sdk"):
                logging.getLogger(name).removeHandler(self._log)

    def _export_metrics(self) -> None:
        data = self._reader.get_metrics_data()
        if self._metrics is None or data is None or not data.resource_metrics:
            return
        if isinstance(self._metrics, OTLPMetricExporter):
            if self._metrics.export(data) is not MetricExportResult.SUCCESS:
                raise OtlpError(self._failure("the duration metrics"))
            return
        doc = MessageToDict(encode_metrics(data), use_integers_for_enums=True)
        self._metrics.write(orjson.dumps(doc) + b"\n")

    def _failure(self, what: str) -> str:
        why = f": {self._log.last}" if self._log.last else ""
        return (
            f"OTLP endpoint {self.where} did not take {what}{why}; {self.sent} spans were "
            "delivered before (nothing in the spool changed: export again when it is back)"
        )


def _histogram_type() -> type:
    from opentelemetry.sdk.metrics import Histogram

    return Histogram


def http_exporters(
    base: str, timeout_s: float = TIMEOUT_S
) -> tuple[OTLPSpanExporter, OTLPMetricExporter]:
    traces, metrics = endpoint_urls(base)
    return (
        OTLPSpanExporter(endpoint=traces, timeout=timeout_s),
        OTLPMetricExporter(endpoint=metrics, timeout=timeout_s),
    )
