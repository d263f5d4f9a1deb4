"""Running the API: open and migrate the store, serve until SIGINT/SIGTERM, close everything.
On uvloop when it is installed."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from km.server.app import RUNNER_OPTIONS, SERVER_NAME, make_app
from km.server.config import ServerConfig
from km.server.connections import ConnectionLimits
from km.server.errors import ListenError, StoreError
from km.server.guard import (
    GUARD,
    ConnectionGuard,
    GuardedSite,
    connection_cap,
    raise_open_file_limit,
)
from km.server.retention import PURGE_INTERVAL_S
from km.server.stores import open_store
from km.server.stores.base import EventStore
from km.server.tls import server_context

log = logging.getLogger("km.server")

SHUTDOWN_TIMEOUT_S = 10.0  # on SIGTERM, in-flight requests get this long to finish
# The cyclic garbage collector's first threshold: net new container objects between two runs
# (Python's default is 700). An ingest request makes a few thousand (the batch's dicts and
# events) and reference counting frees them all when it ends; at 700 the collector ran about
# twice per 500-event batch and walked the batch in flight each time (~1.5-7 us per event,
# more with the machine loaded, benchmarks/ingest_scaling.py). At this threshold it runs when
# the process really grows; what is loaded at start is frozen out of its walks (`gc.freeze`).
GC_THRESHOLD = 50_000


async def serve(config: ServerConfig, database_url: str, where: str) -> None:
    ssl_context = server_context(config.tls_cert, config.tls_key)
    open_files = raise_open_file_limit()
    limits = ConnectionLimits(
        connection_cap(config.max_connections, open_files),
        config.header_timeout_s,
        config.idle_timeout_s,
    )
    _hide_server_version()
    store = await open_store(database_url)
    try:
        found = await store.migrate()
        guard = ConnectionGuard(limits)
        app = make_app(store, config)
        app[GUARD] = guard
        runner = web.AppRunner(
            app,
            **RUNNER_OPTIONS,
            keepalive_timeout=config.idle_timeout_s,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        _tune_gc()
        guard.start()
        retention: asyncio.Task[None] | None = None
        try:
            site = GuardedSite(
                runner,
                config.host,
                config.port,
                guard,
                ssl_context=ssl_context,
                reuse_port=config.reuse_port,
            )
            try:
                await site.start()
            except OSError as exc:
                raise ListenError(config.host, config.port, exc) from None
            log.info("event store %s ready (schema was at version %d, now current)", where, found)
            retention = asyncio.get_running_loop().create_task(_enforce_retention(store))
            scheme = "https" if ssl_context is not None else "http"
            for address in runner.addresses:
                host, port = address[0], address[1]
                log.info("listening on %s://%s:%d", scheme, host, port)
            log.info(
                "at most %d connections (open-file limit %d); request headers within %gs, "
                "idle connections closed after %gs",
                limits.max_connections, open_files, limits.header_timeout_s,
                limits.idle_timeout_s,
            )  # fmt: skip
            await _until_signalled()
            log.info("shutting down")
        finally:
            if retention is not None:
                retention.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retention
            await runner.cleanup()
            await guard.stop()
    finally:
        await store.close()


async def _enforce_retention(store: EventStore) -> None:
    """Each account's retention, every `PURGE_INTERVAL_S` from start-up, in the background."""
    while True:
        try:
            report = await store.enforce_retention(time.time_ns())
        except StoreError as exc:
            log.warning("retention: %s (tried again in %gs)", exc, PURGE_INTERVAL_S)
        else:
            if report:
                log.info(
                    "retention: %d events, %d sessions, %d rollups, %d findings, %d definition "
                    "changes, %d definitions, %d audit rows deleted; partitions dropped: %s; "
                    "made: %s",
                    report.events_deleted, report.sessions_deleted, report.rollups_deleted,
                    report.findings_deleted, report.changes_deleted, report.definitions_deleted,
                    report.audit_deleted, ", ".join(report.partitions_dropped) or "none",
                    ", ".join(report.partitions_created) or "none",
                )  # fmt: skip
        await asyncio.sleep(PURGE_INTERVAL_S)


def _tune_gc() -> None:
    gc.freeze()  # what start-up made lives as long as the process
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, gen1, gen2)


def _hide_server_version() -> None:
    """aiohttp answers the requests it refuses itself (a malformed request line, say) with
    `Server: Python/x aiohttp/y`; the app's own responses get `Server: km` from a signal.
    This process serves nothing else, so its default is set to the same."""
    import aiohttp.web_response

    setattr(aiohttp.web_response, "SERVER_SOFTWARE", SERVER_NAME)  # noqa: B010


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main)
