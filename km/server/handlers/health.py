"""`/health` (the process answers) and `/ready` (the store answers, in time)."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from km.server.errors import StoreError
from km.server.handlers import json_response
from km.server.state import CONFIG, LOG_ONCE, STORE

log = logging.getLogger("km.server")


async def get_health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def get_ready(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(request.app[CONFIG].ready_timeout_s):
            await request.app[STORE].ping()
    except TimeoutError:
        return json_response({"error": "the event store did not answer in time"}, status=503)
    except StoreError as exc:
        # Which database and why goes to the operator's log (once per cause), not the client.
        repeats = request.app[LOG_ONCE].check((type(exc), str(exc)), time.monotonic())
        if repeats is not None:
            log.warning("/ready: %s", exc)
        return json_response({"error": "the event store is closed or unreachable"}, status=503)
    return json_response({"status": "ready"})
