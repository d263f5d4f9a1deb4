"""Captured events as OpenTelemetry spans following the MCP semantic conventions (sans-IO: no
SDK here, just what each span says; `otlp_sdk.py` hands these to the OpenTelemetry SDK).

One span per exchange: a request (either direction) from its captured timestamp to its reply's,
and a notification as a zero-length span. Span name `{mcp.method.name} {target}` (target: the
tool or prompt name; resource URIs stay out of names, they are high-cardinality), kind CLIENT
(the conventions' span for the side that initiates; km sees it from the wire). Attributes:
`mcp.method.name`, `mcp.session.id` (km's session), `mcp.protocol.version` (from the session's
initialize), `jsonrpc.request.id`, `gen_ai.tool.name` and `gen_ai.operation.name=execute_tool`
on tools/call, `gen_ai.prompt.name`, `mcp.resource.uri`, `error.type` and
`rpc.response.status_code` (the JSON-RPC error code; `tool_error` for an `isError` result),
`network.transport=pipe`, and km's own `km.*` (event ids, risk, tokens, `km.direction` on
server-to-client requests). The server is the resource's `service.name`. A W3C
`traceparent` (and `tracestate`) in `params._meta` makes the span a child of that remote span.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

TRANSPORT = "pipe"  # stdio, per the conventions
TOOL_CALL = "tools/call"
PROMPT_GET = "prompts/get"
URI_METHODS = frozenset(
    {"resources/read", "resources/subscribe", "resources/unsubscribe",
     "notifications/resources/updated"}
)  # fmt: skip
MAX_PENDING = 100_000  # requests waiting for their reply; the oldest go out as unanswered
_TRACEPARENT = re.compile(r"\A[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")
REQUEST, NOTIFICATION, RESPONSE, ERROR = "request", "notification", "response", "error"


@dataclass(slots=True)
class SpanSpec:
    """What one span says; times are Unix ns."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, str | int | bool]
    session_id: str
    server: str
    traceparent: str | None = None
    tracestate: str | None = None
    error: str | None = None  # the status description when the span failed
    failed: bool = False


def _doc(payload: bytes | None) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _request_id(rpc_id: str | None) -> str | None:
    if rpc_id is None:
        return None
    if rpc_id.isdigit():
        return rpc_id  # what parsing it gives back, or what a failed parse returns
    try:
        value = orjson.loads(rpc_id)
    except orjson.JSONDecodeError:
        return rpc_id
    return None if value is None else str(value)


def parent_of(params: object) -> tuple[str | None, str | None]:
    """(traceparent, tracestate) from `params._meta`, when it holds a valid traceparent."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return None, None
    parent = meta.get("traceparent")
    if not isinstance(parent, str) or not _TRACEPARENT.match(parent.strip().lower()):
        return None, None
    if parent.strip().lower()[3:35] == "0" * 32:
        return None, None
    state = meta.get("tracestate")
    return parent.strip().lower(), state if isinstance(state, str) else None


def span_of(
    request: Mapping[str, Any], reply: Mapping[str, Any] | None, protocol: str | None
) -> SpanSpec:
    """The span of a request (or notification) event and its reply event (None: no reply
    captured: a zero-length span marked `km.unanswered`)."""
    method = str(request.get("method") or "")
    params = _params(request, method)
    attrs: dict[str, str | int | bool] = {
        "mcp.method.name": method,
        "mcp.session.id": str(request["session_id"]),
        "network.transport": TRANSPORT,
        "km.event.id": str(request["id"]),
    }
    if protocol:
        attrs["mcp.protocol.version"] = protocol
    if request["direction"] != "c2s":
        attrs["km.direction"] = str(request["direction"])
    rid = _request_id(request.get("rpc_id"))
    if rid is not None and request.get("kind") == REQUEST:
        attrs["jsonrpc.request.id"] = rid
    target = None
    name_param = params.get("name")
    if method == TOOL_CALL and isinstance(name_param, str):
        attrs["gen_ai.tool.name"] = target = name_param
        attrs["gen_ai.operation.name"] = "execute_tool"
    elif method == PROMPT_GET and isinstance(name_param, str):
        attrs["gen_ai.prompt.name"] = target = name_param
    if method in URI_METHODS and isinstance(params.get("uri"), str):
        attrs["mcp.resource.uri"] = params["uri"]
    if method == "initialize" and isinstance(params.get("protocolVersion"), str):
        attrs["mcp.protocol.version"] = params["protocolVersion"]
    for key in ("risk", "tokens"):
        if isinstance(request.get(key), int):
            attrs[f"km.{key}"] = request[key]
    parent, state = parent_of(params) if params else (None, None)
    start = int(request["ts_ns"])
    spec = SpanSpec(
        name=f"{method} {target}" if target else method,
        start_ns=start,
        end_ns=start,
        attributes=attrs,
        session_id=str(request["session_id"]),
        server=str(request["server"]),
        traceparent=parent,
        tracestate=state,
    )
    if reply is None:
        if request.get("kind") == REQUEST:
            attrs["km.unanswered"] = True
        return spec
    spec.end_ns = max(start, int(reply["ts_ns"]))
    attrs["km.reply.id"] = str(reply["id"])
    if isinstance(reply.get("tokens"), int):
        attrs["km.reply.tokens"] = reply["tokens"]
    if reply.get("kind") == RESPONSE and reply.get("status") == "ok":
        return spec  # the capture already looked: neither an error nor isError
    answer = _doc(reply.get("payload"))
    error = answer.get("error")
    if reply.get("kind") == ERROR or isinstance(error, dict):
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        attrs["error.type"] = str(code) if code is not None else "error"
        if code is not None:
            attrs["rpc.response.status_code"] = str(code)
        spec.failed = True
        spec.error = message if isinstance(message, str) else None
    elif reply.get("status") == "tool-error" or _is_tool_error(answer):
        attrs["error.type"] = "tool_error"
        spec.failed = True
        spec.error = "tool returned isError: true"
    return spec


def _params(request: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The request's params, parsed only when a span needs them: a trace context to follow, the
    protocol version of an initialize, or a target the capture did not already record."""
    payload = request.get("payload") or b""
    tool = request.get("tool")
    if (
        b"traceparent" not in payload
        and method != "initialize"
        and (tool is not None or not (method in (TOOL_CALL, PROMPT_GET) or method in URI_METHODS))
    ):
        if tool is None:
            return {}
        if method in URI_METHODS:
            return {"uri": tool}
        return {"name": tool}
    params = _doc(payload).get("params")
    return params if isinstance(params, dict) else {}


def _is_tool_error(answer: Mapping[str, Any]) -> bool:
    result = answer.get("result")
    return isinstance(result, dict) and result.get("isError") is True


def protocol_from(event: Mapping[str, Any]) -> str | None:
    """The protocol version an initialize reply settles on."""
    if event.get("method") != "initialize" or event.get("kind") != RESPONSE:
        return None
    result = _doc(event.get("payload")).get("result")
    version = result.get("protocolVersion") if isinstance(result, dict) else None
    return version if isinstance(version, str) else None


class Pairer:
    """Streams events (spool order) into spans: a request waits for the reply linked to it
    (`link_id`); notifications are spans at once; requests still waiting at the end (or pushed
    out past `max_pending`) become unanswered spans. Bounded memory."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._protocol: dict[str, str] = {}

    def feed(self, event: dict[str, Any]) -> SpanSpec | None:
        """The span this event completes, if any (an event completes at most one)."""
        kind = event.get("kind")
        if kind == REQUEST:
            self._pending[event["id"]] = event
            if len(self._pending) > self.max_pending:
                _, oldest = self._pending.popitem(last=False)
                return span_of(oldest, None, self._protocol.get(oldest["session_id"]))
        elif kind == NOTIFICATION:
            return span_of(event, None, self._protocol.get(event["session_id"]))
        elif kind in (RESPONSE, ERROR):
            version = protocol_from(event)
            if version:
                self._protocol[event["session_id"]] = version
            request = self._pending.pop(event.get("link_id") or "", None)
            if request is not None:
                return span_of(request, event, self._protocol.get(request["session_id"]))
        return None

    def finish(self) -> Iterator[SpanSpec]:
        while self._pending:
            _, request = self._pending.popitem(last=False)
            yield span_of(request, None, self._protocol.get(request["session_id"]))


def spans(events: Iterable[dict[str, Any]], max_pending: int = MAX_PENDING) -> Iterator[SpanSpec]:
    pairer = Pairer(max_pending)
    for event in events:
        spec = pairer.feed(event)
        if spec is not None:
            yield spec
    yield from pairer.finish()


# The conventions' duration metric, as observed by the initiating side.
METRIC = "mcp.client.operation.duration"
METRIC_UNIT = "s"
METRIC_DESCRIPTION = (
    "The duration of the MCP request or notification as observed on the sender from the time "
    "it was sent until the response or ack is received."
)
METRIC_ATTRIBUTES = (
    "mcp.method.name", "error.type", "gen_ai.tool.name", "gen_ai.prompt.name",
    "gen_ai.operation.name", "mcp.protocol.version", "network.transport",
    "rpc.response.status_code",
)  # fmt: skip


def metric_point(spec: SpanSpec) -> tuple[float, tuple[str | int | bool | None, ...]] | None:
    """(seconds, the span's values of `METRIC_ATTRIBUTES`, None where it has none) for the
    duration histogram; None for notifications and unanswered requests (no duration observed).
    `metric_attributes` makes the values an attribute set."""
    if "km.reply.id" not in spec.attributes:
        return None
    return (spec.end_ns - spec.start_ns) / 1e9, tuple(map(spec.attributes.get, METRIC_ATTRIBUTES))


def metric_attributes(values: tuple[str | int | bool | None, ...]) -> dict[str, str | int | bool]:
    return {k: v for k, v in zip(METRIC_ATTRIBUTES, values, strict=True) if v is not None}
