"""km export --format otlp over real captures (real km, mcp-server-time, server-everything):
spans received by a real decoding OTLP/HTTP receiver carry the MCP conventions' names and
attributes, the captured times, and the caller's trace as parent when `params._meta` has a
traceparent; the OTLP JSON file parses as OTLP; a down or garbage endpoint is one clear line."""

from __future__ import annotations

import base64
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from km.export.otlp import parent_of, spans
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
