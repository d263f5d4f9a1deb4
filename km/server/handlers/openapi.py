"""`GET /api/v1/openapi.json`: the document from `km.server.openapi`, serialized once."""

from __future__ import annotations

from functools import cache

import orjson
from aiohttp import web

from km.server.openapi import document


@cache
def _body() -> bytes:
    return orjson.dumps(document())


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json")
