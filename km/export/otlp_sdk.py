"""The OpenTelemetry SDK side of the OTLP export: `SpanSpec`s become the SDK's finished spans
(`ReadableSpan`, one `Resource` per MCP server, `service.name` = km's server name), handed in
batches to an exporter: the SDK's OTLP/HTTP exporter for `--otlp-endpoint` /
`KM_OTLP_ENDPOINT`, or `JsonFileExporter` for a file (OTLP JSON, one `ExportTraceServiceRequest`
a line, as the OpenTelemetry file exporter and the collector's otlpjsonfile receiver use). The
duration histogram `mcp.client.operation.duration` goes the same way at the end, as the SDK's
`MetricsData`.

Spans are finished when km reads them, so they are built as the SDK's `ReadableSpan`s directly,
with what the SDK's tracer would give them (its random ids, sampled flags, the remote parent's
trace and trace state, the span limits), not started and ended through a tracer (which
re-validates every attribute, consults the sampler and the current context, runs the
processors: ~17 us a span). The histogram is aggregated here the way the SDK's explicit-bucket
aggregation does, not measured through the SDK's meter (~9 us a span); together the two were
more than half of an export's time. `tests/export/test_otlp.py` holds both to what the SDK's
tracer and meter make of the same input, through the SDK exporter's encoders.

Imported only by the export commands and the live OTLP sender, never on capture's path.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from time import time_ns
from typing import Any, BinaryIO

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from km import __version__
from km.errors import KmError
from km.export.otlp import (
    METRIC,
    METRIC_DESCRIPTION,
    METRIC_UNIT,
    SpanSpec,
    metric_attributes,
    metric_point,
)

BATCH = 1000  # spans an export request
TIMEOUT_S = 10.0  # one export request, the SDK's retries included
SCOPE = "km.export"
# The conventions' recommended buckets for MCP durations, in seconds.
BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_PROPAGATOR = TraceContextTextMapPropagator()
# The trace flags the SDK's tracer gives a sampled span (W3C level 2 adds "random trace id").
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
_ROOT_FLAGS = TraceFlags(TraceFlags.SAMPLED | _RANDOM)
_UNSET = Status(StatusCode.UNSET)


class OtlpError(KmError):
    """An OTLP endpoint did not take what was sent."""


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
        self.out.write(traces_line(spans))
        return SpanExportResult.SUCCESS


def traces_line(spans: Sequence[ReadableSpan]) -> bytes:
    """One `ExportTraceServiceRequest` in OTLP JSON and a newline, spans grouped by resource.

    Written as bytes from templates, every string through `orjson.dumps` (the bytes an orjson
    dump of the same document gives): building a dict an attribute cost twice as much, most of
    it in the allocator and the garbage collector."""
    groups: dict[int, tuple[Resource, list[bytes]]] = {}
    for span in spans:
        key = id(span.resource)
        if key not in groups:
            groups[key] = (span.resource, [])
        groups[key][1].append(_span_json(span))
    return b'{"resourceSpans":[%b]}\n' % b",".join(
        b'{"resource":{"attributes":[%b]},"scopeSpans":[{"scope":%b,"spans":[%b]}]}'
        % (_attributes(resource.attributes), _SCOPE_JSON, b",".join(out))
        for resource, out in groups.values()
    )


_SCOPE_JSON = orjson.dumps({"name": SCOPE, "version": __version__})
_SPAN_JSON = (
    b'{"traceId":"%032x","spanId":"%016x","name":%b,"kind":%d,"startTimeUnixNano":"%d",'
    b'"endTimeUnixNano":"%d","attributes":[%b],"flags":%d'
)


def _span_json(span: ReadableSpan) -> bytes:
    ctx = span.context
    assert ctx is not None
    parent = span.parent
    flags = 0x100 | int(ctx.trace_flags) | (0x200 if parent is not None and parent.is_remote else 0)
    out = _SPAN_JSON % (
        ctx.trace_id,
        ctx.span_id,
        orjson.dumps(span.name),
        _KINDS[span.kind],
        span.start_time,
        span.end_time,
        _attributes(span.attributes or {}),
        flags,
    )
    if parent is not None:
        out += b',"parentSpanId":"%016x"' % parent.span_id
    state = ctx.trace_state.to_header() if ctx.trace_state else ""
    if state:
        out += b',"traceState":%b' % orjson.dumps(state)
    status = span.status
    if status.status_code is StatusCode.ERROR:
        out += b',"status":{"code":2,"message":%b}' % orjson.dumps(status.description or "")
    return out + b"}"


# The SDK counts span kinds from INTERNAL=0, OTLP from UNSPECIFIED=0.
_KINDS = {kind: kind.value + 1 for kind in SpanKind}


def _attributes(attrs: Mapping[str, Any]) -> bytes:
    """The attributes' OTLP JSON `KeyValue`s, comma-separated."""
    out: list[bytes] = []
    append, dumps = out.append, orjson.dumps
    for item in attrs.items():
        key, value = item
        kind = type(value)
        if kind is str:
            if key not in _REPEATING:
                append(_KV % (dumps(key), b"stringValue", dumps(value)))
                continue
            entry = _MEMO.get(item)  # low-cardinality values: encoded once
            if entry is None:
                if len(_MEMO) > 10_000:
                    _MEMO.clear()
                entry = _MEMO[item] = _KV % (dumps(key), b"stringValue", dumps(value))
            append(entry)
        elif kind is int:
            append(_KV % (dumps(key), b"intValue", b'"%d"' % value))
        elif kind is bool:
            append(_KV % (dumps(key), b"boolValue", b"true" if value else b"false"))
        elif kind is float:
            append(_KV % (dumps(key), b"doubleValue", dumps(value)))
        else:
            append(_KV % (dumps(key), b"stringValue", dumps(str(value))))
    return b",".join(out)


_KV = b'{"key":%b,"value":{"%b":%b}}'
_REPEATING = frozenset({
    "mcp.method.name", "mcp.session.id", "network.transport", "mcp.protocol.version",
    "gen_ai.tool.name", "gen_ai.operation.name", "gen_ai.prompt.name", "error.type",
    "rpc.response.status_code", "km.direction",
})  # fmt: skip
_MEMO: dict[tuple[str, Any], bytes] = {}


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
        self.spans: list[ReadableSpan] = []
        self._resources: dict[str, Resource] = {}
        self._scope = InstrumentationScope(SCOPE, __version__)
        self._ids = RandomIdGenerator()
        # The OTEL_* attribute limits, applied as the SDK's tracer does, on spans they can cut.
        self._limits = SpanLimits()
        self._cap = self._limits.max_span_attributes
        if self._limits.max_span_attribute_length is not None:
            self._cap = -1  # values may need cutting: every span
        self._metrics = metrics
        self._durations = Durations()
        self._log = _LastLog()
        for name in ("opentelemetry.exporter", "opentelemetry.sdk"):
            logger = logging.getLogger(name)
            logger.addHandler(self._log)
            logger.propagate = False

    def _resource(self, server: str) -> Resource:
        resource = self._resources.get(server)
        if resource is None:
            resource = self._resources[server] = Resource.create(
                {"service.name": server, "service.namespace": "mcp"}
            )
        return resource

    def write(self, spec: SpanSpec) -> None:
        parent = _remote_parent(spec) if spec.traceparent else None
        if parent is None:
            trace_id, flags, state = self._ids.generate_trace_id(), _ROOT_FLAGS, None
        else:
            trace_id, state = parent.trace_id, parent.trace_state
            flags = TraceFlags(TraceFlags.SAMPLED | (parent.trace_flags & _RANDOM))
        context = SpanContext(trace_id, self._ids.generate_span_id(), False, flags, state)
        attributes: object = spec.attributes
        if self._cap is not None and len(spec.attributes) > self._cap:
            attributes = BoundedAttributes(
                self._limits.max_span_attributes, spec.attributes, immutable=False,
                max_value_len=self._limits.max_span_attribute_length,
            )  # fmt: skip
        self.spans.append(
            ReadableSpan(
                spec.name,
                context,
                parent,
                self._resource(spec.server),
                attributes,  # type: ignore[arg-type]
                kind=SpanKind.CLIENT,
                status=Status(StatusCode.ERROR, spec.error) if spec.failed else _UNSET,
                start_time=spec.start_ns,
                end_time=spec.end_ns,
                instrumentation_scope=self._scope,
            )
        )
        if self._metrics is not None:
            point = metric_point(spec)
            if point is not None:
                self._durations.record(point[0], point[1])
        if len(self.spans) >= self.batch:
            self.flush()

    def flush(self) -> None:
        spans, self.spans = self.spans, []
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
            for name in ("opentelemetry.exporter", "opentelemetry.sdk"):
                logging.getLogger(name).removeHandler(self._log)

    def _export_metrics(self) -> None:
        data = self._durations.data()
        if self._metrics is None or data is None:
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


def _remote_parent(spec: SpanSpec) -> SpanContext | None:
    """The caller's span from the W3C headers, parsed by the SDK's propagator."""
    carrier = {"traceparent": spec.traceparent or ""}
    if spec.tracestate:
        carrier["tracestate"] = spec.tracestate
    parent = get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return parent if parent.is_valid else None


@dataclass(slots=True)
class _Point:
    attributes: dict[str, str | int | bool]
    start_ns: int
    count: int = 0
    sum: float = 0
    min: float = math.inf
    max: float = -math.inf
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))


class Durations:
    """The duration histogram, aggregated as the SDK's explicit-bucket histogram aggregation
    does (cumulative; per attribute set: count, sum, min, max, and the bucket `bisect_left`
    finds in `BUCKETS`), handed out as the SDK's `MetricsData` for its encoder and exporter."""

    def __init__(self, resource: Resource | None = None) -> None:
        self.resource = resource or Resource.create({"service.name": "km"})
        self._points: dict[tuple[str | int | bool | None, ...], _Point] = {}

    def record(self, seconds: float, values: tuple[str | int | bool | None, ...]) -> None:
        """One duration; `values` as `metric_point` gives them (one attribute set each)."""
        point = self._points.get(values)
        if point is None:
            point = self._points[values] = _Point(metric_attributes(values), time_ns())
        point.count += 1
        point.sum += seconds
        if seconds < point.min:
            point.min = seconds
        if seconds > point.max:
            point.max = seconds
        point.buckets[bisect_left(BUCKETS, seconds)] += 1

    def data(self) -> MetricsData | None:
        if not self._points:
            return None
        now = time_ns()
        points = [
            HistogramDataPoint(
                attributes=p.attributes,
                start_time_unix_nano=p.start_ns,
                time_unix_nano=now,
                count=p.count,
                sum=p.sum,
                bucket_counts=tuple(p.buckets),
                explicit_bounds=BUCKETS,
                min=p.min,
                max=p.max,
            )
            for p in self._points.values()
        ]
        histogram = Histogram(points, AggregationTemporality.CUMULATIVE)
        metric = Metric(METRIC, METRIC_DESCRIPTION, METRIC_UNIT, histogram)
        scope = ScopeMetrics(InstrumentationScope(SCOPE, __version__), [metric], "")
        return MetricsData([ResourceMetrics(self.resource, [scope], "")])


def http_exporters(
    base: str, timeout_s: float = TIMEOUT_S
) -> tuple[OTLPSpanExporter, OTLPMetricExporter]:
    traces, metrics = endpoint_urls(base)
    return (
        OTLPSpanExporter(endpoint=traces, timeout=timeout_s),
        OTLPMetricExporter(endpoint=metrics, timeout=timeout_s),
    )
