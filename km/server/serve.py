"""Running the API: open and migrate the store, serve until SIGINT/SIGTERM, close everything.
On uvloop when it is installed."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from km.server.app import RUNNER_OPTIONS, make_app
from km.server.config import ServerConfig
from km.server.errors import ListenError
from km.server.stores import open_store

log = logging.getLogger("km.server")

SHUTDOWN_TIMEOUT_S = 10.0  # on SIGTERM, in-flight requests get this long to finish


async def serve(config: ServerConfig, database_url: str, where: str) -> None:
    store = await open_store(database_url)
    try:
        found = await store.migrate()
        runner = web.AppRunner(make_app(store, config), **RUNNER_OPTIONS)
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, config.host, config.port, shutdown_timeout=SHUTDOWN_TIMEOUT_S
            )
            try:
                await site.start()
            except OSError as exc:
                raise ListenError(config.host, config.port, exc) from None
            log.info("event store %s ready (schema was at version %d, now current)", where, found)
            for address in runner.addresses:
                host, port = address[0], address[1]
                log.info("listening on http://%s:%d", host, port)
            await _until_signalled()
            log.info("shutting down")
        finally:
            await runner.cleanup()
    finally:
        await store.close()


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
