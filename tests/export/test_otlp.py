"""km export --format otlp over real captures (real km, mcp-server-time, server-everything):
spans received by a real decoding OTLP/HTTP receiver carry the MCP conventions' names and
attributes, the captured times, and the caller's trace as parent when `params._meta` has a
traceparent; the OTLP JSON file parses as OTLP; a down or garbage endpoint is one clear line."""

from __future__ import annotations

import base64
import io
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from km import __version__
from km.export.otlp import (
    METRIC,
    METRIC_DESCRIPTION,
    METRIC_UNIT,
    SpanSpec,
    metric_attributes,
    metric_point,
    parent_of,
    spans,
)
from km.export.otlp_cli import write_spans
from km.export.otlp_sdk import BUCKETS, SCOPE, Durations, JsonFileExporter, SpanWriter
from km.export.source import ExportSource
from km.views.spool_read import SpoolReader
from tests.export.captures import EVERYTHING, INIT, INITIALIZED, call, capture, km_env, time_session
from tests.export.otlp_receiver import receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = km_env(tmp_path_factory.mktemp("otlp"))
    time_session(env)
    capture(env, "everything", EVERYTHING, [
        INIT, INITIALIZED,
        call(2, "echo", {"message": "hi"},
             meta={"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "rojo=1"}),
        {"jsonrpc": "2.0", "id": 3, "method": "resources/read",
         "params": {"uri": "demo://resource/static/document/architecture.md"}},
        {"jsonrpc": "2.0", "id": "s-4", "method": "no/such/method"},
        {"jsonrpc": "2.0", "id": 5, "method": "prompts/get",
         "params": {"name": "simple-prompt"}},
    ])  # fmt: skip
    return env


def km(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "km", *args], env=env, capture_output=True,
                          timeout=180)  # fmt: skip


def attrs(span: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which)
    return out


def captured_times(env: dict[str, str]) -> dict[str, int]:
    conn = sqlite3.connect(env["KM_SPOOL"])
    try:
        return dict(conn.execute("SELECT id, ts_ns FROM events").fetchall())
    finally:
        conn.close()


def sessions_of(env: dict[str, str], server: str) -> set[str]:
    conn = sqlite3.connect(env["KM_SPOOL"])
    try:
        rows = conn.execute("SELECT session_id FROM sessions WHERE server = ?", [server])
        return {r[0] for r in rows}
    finally:
        conn.close()


def test_spans_reach_a_real_receiver_with_the_mcp_conventions(env: dict[str, str]) -> None:
    with receiver() as (url, got):
        done = km(env, "export", "--format", "otlp", "--otlp-endpoint", url)
    assert done.returncode == 0, done.stderr
    assert not got.problems
    received = got.spans()
    by_name = {span.name: (resource, span) for resource, span in received}
    assert {"initialize", "tools/call get_current_time", "tools/call echo",
            "resources/read", "prompts/get simple-prompt", "no/such/method",
            "notifications/initialized"} <= set(by_name), sorted(by_name)  # fmt: skip
    times = captured_times(env)
    everything = sessions_of(env, "everything")
    for resource, span in received:
        a = attrs(span)
        assert span.kind == 3  # CLIENT
        assert a["network.transport"] == "pipe" and a["mcp.method.name"] in span.name
        assert a["mcp.session.id"] and a["mcp.protocol.version"] == "2025-06-18"
        assert span.start_time_unix_nano == times[str(a["km.event.id"])]
        if "km.reply.id" in a:
            assert span.end_time_unix_nano == times[str(a["km.reply.id"])]
        service = {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"]
        server = "everything" if a["mcp.session.id"] in everything else "clock"
        assert service == server
    resource, echo = by_name["tools/call echo"]
    a = attrs(echo)
    assert a["gen_ai.tool.name"] == "echo" and a["gen_ai.operation.name"] == "execute_tool"
    assert a["jsonrpc.request.id"] == "2"
    assert echo.trace_id.hex() == TRACE and echo.parent_span_id.hex() == PARENT
    assert echo.trace_state == "rojo=1"
    _, other = by_name["tools/call get_current_time"]
    assert other.parent_span_id == b"" and other.trace_id.hex() != TRACE
    _, read = by_name["resources/read"]
    assert attrs(read)["mcp.resource.uri"] == "demo://resource/static/document/architecture.md"
    assert "gen_ai.operation.name" not in attrs(read)
    _, unknown = by_name["no/such/method"]
    a = attrs(unknown)
    assert a["error.type"] == a["rpc.response.status_code"] == "-32601"
    assert a["jsonrpc.request.id"] == "s-4" and unknown.status.code == 2
    _, prompt = by_name["prompts/get simple-prompt"]
    assert attrs(prompt)["gen_ai.prompt.name"] == "simple-prompt"
    tool_errors = [s for _, s in received if attrs(s).get("error.type") == "tool_error"]
    assert len(tool_errors) == 1 and tool_errors[0].status.code == 2  # the bad time zone
    # The duration histogram of the conventions.
    metrics = [m for req in got.metrics for rm in req.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics]  # fmt: skip
    durations = [m for m in metrics if m.name == "mcp.client.operation.duration"]
    assert durations and durations[0].unit == "s"
    points = durations[0].histogram.data_points
    replied = [s for _, s in received if "km.reply.id" in attrs(s)]
    assert sum(p.count for p in points) == len(replied)


def test_the_file_is_otlp_json(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    done = km(env, "export", "--format", "otlp", "-o", str(out), "server:everything")
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    trace_lines = [d for d in lines if "resourceSpans" in d]
    assert trace_lines and any("resourceMetrics" in d for d in lines)
    names = []
    for doc in trace_lines:
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:  # OTLP JSON: hex ids; protobuf's JSON: base64
                    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
                    names.append(span["name"])
        ParseDict(doc, ExportTraceServiceRequest())  # every field is a real OTLP field
    assert "tools/call echo" in names and "tools/call get_current_time" not in names


def test_an_endpoint_that_is_down_or_answers_garbage(env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    done = km(env, "export", "--format", "otlp", "--otlp-endpoint", f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "did not take" in lines[0]
    with receiver("garbage") as (url, _):
        done = km(env, "export", "--format", "otlp", "--otlp-endpoint", url)
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "did not take" in lines[0] and "400" in lines[0], lines


def test_pairing_in_memory() -> None:
    def ev(i: str, kind: str, ts: int, **kw: object) -> dict[str, Any]:
        return {"id": i, "session_id": "s", "server": "x", "direction": "c2s", "kind": kind,
                "ts_ns": ts, "payload": b"{}", **kw}  # fmt: skip

    out = list(spans([
        ev("a", "request", 10, method="ping", rpc_id="1"),
        ev("b", "request", 11, method="tools/list", rpc_id="2"),
        ev("c", "response", 15, method="ping", rpc_id="1", link_id="a"),
        ev("d", "notification", 16, method="notifications/x"),
        ev("e", "response", 99, method="nothing", link_id="gone"),
    ], max_pending=10))  # fmt: skip
    assert [(s.name, s.start_ns, s.end_ns) for s in out] == [
        ("ping", 10, 15), ("notifications/x", 16, 16), ("tools/list", 11, 11)]  # fmt: skip
    assert out[2].attributes["km.unanswered"] is True
    assert parent_of({"_meta": {"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}}) == (
        None, None)  # fmt: skip
    assert parent_of({"_meta": {"traceparent": "garbage"}}) == (None, None)


# The SDK objects km builds itself (finished spans, the histogram) against what the SDK's own
# tracer and meter make of the same input, through the SDK exporter's encoder; and the OTLP JSON
# file against that encoding.


class Keep(SpanExporter):
    def __init__(self) -> None:
        self.batches: list[list[ReadableSpan]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append(list(spans))
        return SpanExportResult.SUCCESS


class Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def sdk_spans(specs: list[SpanSpec]) -> list[ReadableSpan]:
    """The specs as the SDK's tracer makes them: started and ended, one provider a server."""
    collect, tracers = Collect(), {}
    for spec in specs:
        if spec.server not in tracers:
            provider = TracerProvider(resource=Resource.create(
                {"service.name": spec.server, "service.namespace": "mcp"}))  # fmt: skip
            provider.add_span_processor(collect)
            tracers[spec.server] = provider.get_tracer(SCOPE, __version__)
        carrier = {"traceparent": spec.traceparent or ""}
        if spec.tracestate:
            carrier["tracestate"] = spec.tracestate
        context = TraceContextTextMapPropagator().extract(carrier) if spec.traceparent else None
        span = tracers[spec.server].start_span(spec.name, context=context, kind=SpanKind.CLIENT,
                                               attributes=spec.attributes,
                                               start_time=spec.start_ns)  # fmt: skip
        if spec.failed:
            span.set_status(Status(StatusCode.ERROR, spec.error))
        span.end(end_time=spec.end_ns)
    return collect.spans


def captured_specs(env: dict[str, str]) -> list[SpanSpec]:
    reader = SpoolReader.open(env["KM_SPOOL"])
    try:
        specs: list[SpanSpec] = []
        write_spans(ExportSource(reader, None), specs.append)
        return specs
    finally:
        reader.close()


def without_random_ids(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.span_id = b""
                if not span.parent_span_id:
                    span.trace_id = b""  # a root: the SDK draws its trace id
    return request


def test_spans_are_what_the_sdk_tracer_makes(env: dict[str, str]) -> None:
    specs = captured_specs(env)
    kept = Keep()
    writer = SpanWriter(kept, batch=4)
    for spec in specs:
        writer.write(spec)
    writer.close()
    ours = [span for batch in kept.batches for span in batch]
    theirs = sdk_spans(specs)
    assert len(ours) == len(theirs) == len(specs) and any(s.parent for s in ours)
    for a, b in zip(ours, theirs, strict=True):
        assert a.context is not None and b.context is not None
        assert a.context.trace_flags == b.context.trace_flags
        assert a.context.trace_state == b.context.trace_state
        assert a.context.is_remote == b.context.is_remote == False  # noqa: E712
    assert without_random_ids(encode_spans(ours)) == without_random_ids(encode_spans(theirs))
    assert len({s.context.span_id for s in ours if s.context}) == len(ours)


@pytest.mark.parametrize("limits", [{}, {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4"},
                                    {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3"}])  # fmt: skip
def test_the_otel_span_limits_apply_as_the_sdk_tracer_applies_them(
    limits: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    specs = [SpanSpec(f"tools/call t{n}", n, n + 5, {"mcp.method.name": "tools/call",
                      "gen_ai.tool.name": f"tool-{n}-long-name", "km.risk": n, "km.x": True},
                      "s", f"srv{n % 2}") for n in range(6)]  # fmt: skip
    kept = Keep()
    writer = SpanWriter(kept)
    for spec in specs:
        writer.write(spec)
    writer.close()
    (ours,) = kept.batches
    mine, theirs = without_random_ids(encode_spans(ours)), without_random_ids(encode_spans(
        sdk_spans(specs)))  # fmt: skip
    assert mine == theirs
    spans = [s for rs in mine.resource_spans for ss in rs.scope_spans for s in ss.spans]
    values = [a.value.string_value for s in spans for a in s.attributes]
    dropped = [s.dropped_attributes_count for s in spans]
    assert ("tool" in values or any(dropped)) == bool(limits)  # the limits did cut


def assert_file_is_the_encoding(batch: list[ReadableSpan]) -> None:
    """The JSON file's line for `batch` decodes to what the SDK exporter's encoder makes of it."""
    out = io.BytesIO()
    JsonFileExporter(out).export(batch)
    (line,) = out.getvalue().splitlines()
    doc = orjson.loads(line)
    flags = []
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
                flags.append(span.pop("flags"))
    from_file = ParseDict(doc, ExportTraceServiceRequest())
    encoded = encode_spans(batch)
    spans = [s for rs in encoded.resource_spans for ss in rs.scope_spans for s in ss.spans]
    trace_flags = {s.context.span_id: int(s.context.trace_flags) for s in batch if s.context}
    assert len(trace_flags) == len(batch) == len(spans) == len(flags)
    for span, flag in zip(spans, flags, strict=True):  # the file adds the W3C trace flags
        assert flag == span.flags | trace_flags[int.from_bytes(span.span_id, "big")]
        span.flags = 0
        if span.status.code == 0:
            span.ClearField("status")  # unset: the encoder writes it empty, the file not
    assert from_file == encoded


def test_the_file_is_the_sdk_encoders_spans_as_otlp_json(env: dict[str, str]) -> None:
    kept = Keep()
    writer = SpanWriter(kept, batch=5)
    for spec in captured_specs(env):
        writer.write(spec)
    writer.close()
    assert len(kept.batches) > 1
    for batch in kept.batches:
        assert_file_is_the_encoding(batch)


def test_the_file_writes_any_string_and_value_as_the_encoder_does() -> None:
    odd = 'quote " back \\ slash \n\t\x00\x1f\x7f é 字 😀 \u2028'
    resources = [
        Resource.create({"service.name": "x"}),
        Resource.create({"service.name": odd, "odd.int": -(2**62), "odd.bool": False}),
    ]  # one object a server, as SpanWriter has them (the file groups by object)
    parent = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True,
                         TraceFlags(1), TraceState([("rojo", "1"), ("congo", "t61")]))  # fmt: skip
    attributes: list[dict[str, Any]] = [
        {"s": odd, "gen_ai.tool.name": odd, "i": n - 3, "big": 2**63 - 1, "b": n % 2 == 0,
         "f": n / 7, "mcp.method.name": f"m{n % 2}", "": ""} for n in range(12)
    ]  # fmt: skip
    batch = [
        ReadableSpan(
            odd if n % 2 else f"span {n}",
            SpanContext(
                parent.trace_id if n % 3 else n + 1,
                n + 1,
                False,
                TraceFlags(n % 4),
                parent.trace_state if n % 3 else None,
            ),
            parent if n % 3 else None,
            resources[n % 2],
            attributes[n],
            kind=list(SpanKind)[n % len(SpanKind)],
            status=Status(StatusCode.ERROR, odd if n % 2 else None) if n % 3 == 2 else Status(),
            start_time=n,
            end_time=2**63 - 1 - n,
            instrumentation_scope=InstrumentationScope(SCOPE, __version__),
        )
        for n in range(12)
    ]
    assert_file_is_the_encoding(batch)


def test_durations_are_the_sdk_histogram() -> None:
    reader = InMemoryMetricReader(preferred_temporality={
        SdkHistogram: AggregationTemporality.CUMULATIVE})  # fmt: skip
    view = View(instrument_name=METRIC,
                aggregation=ExplicitBucketHistogramAggregation(boundaries=BUCKETS))  # fmt: skip
    meters = MeterProvider(metric_readers=[reader], views=[view],
                           resource=Resource.create({"service.name": "km"}))  # fmt: skip
    histogram = meters.get_meter(SCOPE, __version__).create_histogram(
        METRIC, unit=METRIC_UNIT, description=METRIC_DESCRIPTION)  # fmt: skip
    ours = Durations()
    tools = ["get_current_time", "echo", "add"]
    for n in range(3000):  # every bucket, its bounds exactly, and three attribute sets
        seconds = [0.0, 1e-9, BUCKETS[n % len(BUCKETS)], 0.013 * n, 400.0][n % 5]
        attrs: dict[str, str | int | bool] = {
            "mcp.method.name": "tools/call", "gen_ai.tool.name": tools[n % 3],
            "network.transport": "pipe", "km.reply.id": str(n)}  # fmt: skip
        if n % 7 == 0:
            attrs["error.type"] = "tool_error"
        spec = SpanSpec("x", 0, round(seconds * 1e9), attrs, "s", "srv")
        point = metric_point(spec)
        assert point is not None
        histogram.record(point[0], metric_attributes(point[1]))
        ours.record(*point)
    theirs = reader.get_metrics_data()
    meters.shutdown()
    assert theirs is not None and ours.data() is not None

    def timeless(data: MetricsData) -> ExportMetricsServiceRequest:
        request = encode_metrics(data)
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for p in m.histogram.data_points:
                        assert p.start_time_unix_nano and p.time_unix_nano
                        p.start_time_unix_nano = p.time_unix_nano = 0
        return request

    assert timeless(ours.data()) == timeless(theirs)  # type: ignore[arg-type]
    assert metric_point(SpanSpec("ping", 1, 1, {"mcp.method.name": "ping"}, "s", "x")) is None
