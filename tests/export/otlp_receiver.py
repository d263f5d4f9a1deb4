"""A real OTLP/HTTP receiver for the tests: aiohttp on 127.0.0.1 in its own thread, decoding
each request with the `opentelemetry-proto` messages (a body that does not decode fails the
request and is recorded as a problem). `mode` makes it answer garbage instead."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class Received:
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    mode: str = "ok"  # ok | garbage (HTTP 400, not protobuf)

    def spans(self) -> list[tuple[Any, Any]]:
        return [
            (rs.resource, span)
            for req in self.traces
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


@contextmanager
def receiver(mode: str = "ok") -> Iterator[tuple[str, Received]]:
    got = Received(mode=mode)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def body(request: web.Request) -> bytes:
        data = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return data

    async def traces(request: web.Request) -> web.Response:
        if got.mode == "garbage":
            return web.Response(status=400, body=b"\x00garbage{", content_type="text/plain")
        try:
            got.traces.append(ExportTraceServiceRequest.FromString(await body(request)))
        except Exception as exc:  # a body that does not decode is the test's failure
            got.problems.append(repr(exc))
            return web.Response(status=400)
        out = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=out, content_type="application/x-protobuf")

    async def metrics(request: web.Request) -> web.Response:
        if got.mode == "garbage":
            return web.Response(status=400, body=b"\x00garbage{", content_type="text/plain")
        try:
            got.metrics.append(ExportMetricsServiceRequest.FromString(await body(request)))
        except Exception as exc:
            got.problems.append(repr(exc))
            return web.Response(status=400)
        out = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=out, content_type="application/x-protobuf")

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        app.router.add_post("/v1/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        server = site._server
        assert server is not None
        holder["port"] = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        yield f"http://127.0.0.1:{holder['port']}", got
    finally:
        runner = holder["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
