"""The connection guard: the asyncio shell around `km.server.connections.ConnectionTable`.

`GuardedSite` listens like aiohttp's `TCPSite` (TLS included) but wraps each connection's
protocol so the table sees it open, receive bytes and close; `connection_middleware` tells it
when a request's handler starts and ends; a sweeper task closes what timed out. With TLS the
handshake has the header timeout too (a connection that never finishes it holds a descriptor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from km.server.connections import ConnectionLimits, ConnectionTable

log = logging.getLogger("km.server")

FD_RESERVE = 64  # descriptors kept for the store (pool, SQLite files), the listener, logs
SWEEP_INTERVAL_S = 1.0  # how often timed-out connections are looked for
BACKLOG = 511  # listen backlog: Linux's usual somaxconn cap

Transport = asyncio.BaseTransport


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; return the soft limit in force."""
    if sys.platform == "win32":
        return 2048  # no RLIMIT_NOFILE; sockets are not bounded by it
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(wanted: int, open_files: int) -> int:
    """At most `wanted`, and enough below the open-file limit that accept() never fails."""
    return max(1, min(wanted, open_files - FD_RESERVE))


class ConnectionGuard:
    def __init__(self, limits: ConnectionLimits) -> None:
        self.table: ConnectionTable[Transport] = ConnectionTable(limits)
        self._sweeper: asyncio.Task[None] | None = None

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(self, factory())

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            for transport in self.table.expired(time.monotonic()):
                transport.abort()  # type: ignore[attr-defined]


class _GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol; tells the table what happens."""

    __slots__ = ("_admitted", "_guard", "_inner", "_transport")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: Transport | None = None
        self._admitted = False

    def connection_made(self, transport: Transport) -> None:
        self._transport = transport
        for victim in self._guard.table.opened(transport, time.monotonic()):
            victim.abort()  # type: ignore[attr-defined]
            if victim is transport:
                return  # every slot busy: refused; aiohttp never hears of it
        self._admitted = True
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._guard.table.data(self._transport, time.monotonic())  # type: ignore[arg-type]
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.table.closed(self._transport)
        if self._admitted:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()


GUARD = web.AppKey("connection_guard", ConnectionGuard)


@web.middleware
async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app.get(GUARD)
    transport = request.transport
    if guard is None or transport is None:
        return await handler(request)
    guard.table.busy(transport)
    try:
        return await handler(request)
    finally:
        guard.table.idle(transport, time.monotonic())


class GuardedSite(web.BaseSite):
    """aiohttp's TCPSite, with every connection going through `guard`."""

    __slots__ = ("_guard", "_host", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=BACKLOG)
        self._host = host
        self._port = port
        self._guard = guard
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        extra: dict[str, Any] = {}
        if self._ssl_context is not None:
            extra["ssl_handshake_timeout"] = self._guard.table.limits.header_timeout_s
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
            **extra,
        )
