"""The insight read side: findings, the tool inventory, and approving (pinning) definitions,
of the caller's account only."""

from __future__ import annotations

from aiohttp import web

from km.server.errors import UnknownTool
from km.server.handlers import json_response
from km.server.handlers.ingest import read_body
from km.server.params import (
    approval,
    cursor_param,
    finding_filter,
    limit_param,
    text_param,
)
from km.server.shapes import finding_json, pin_json, tools_json
from km.server.state import CONFIG, PRINCIPAL, STORE

MAX_APPROVE_BODY = 64 * 1024


async def get_findings(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    query = request.rel_url.query
    filters = finding_filter(query)
    limit = limit_param(query, config.default_page, config.max_page)
    page = await request.app[STORE].list_findings(
        request[PRINCIPAL].account_id, filters, cursor_param(query), limit
    )
    return json_response(
        {"findings": [finding_json(f) for f in page.items], "next_cursor": page.next_cursor}
    )


async def get_tools(request: web.Request) -> web.Response:
    server = text_param(request.rel_url.query, "server")
    inventory = await request.app[STORE].inventory(request[PRINCIPAL].account_id, server)
    return json_response(tools_json(inventory))


async def post_approve(request: web.Request) -> web.Response:
    body = await read_body(request, MAX_APPROVE_BODY, request.app[CONFIG].body_timeout_s)
    server, tool = approval(body)
    pins = await request.app[STORE].approve(request[PRINCIPAL].account_id, server, tool)
    if not pins:
        raise UnknownTool(server, tool)
    return json_response({"pinned": [pin_json(p) for p in pins]})
