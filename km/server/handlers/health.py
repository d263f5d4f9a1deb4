"""`/health` (the process answers) and `/ready` (the store answers, in time)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from km.server.errors import StoreError
from km.server.handlers import json_response
from km.server.state import CONFIG, STORE


async def get_health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def get_ready(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(request.app[CONFIG].ready_timeout_s):
            await request.app[STORE].ping()
    except TimeoutError:
        return json_response({"error": "the event store did not answer in time"}, status=503)
    except StoreError as exc:
        return json_response({"error": str(exc)}, status=503)
    return json_response({"status": "ready"})
