"""The read side: sessions, events and hourly stats of the caller's account only."""

from __future__ import annotations

from aiohttp import web

from km.server.handlers import json_response
from km.server.params import (
    cursor_param,
    event_filter,
    filter_param,
    limit_param,
    model_param,
    time_range,
)
from km.server.shapes import event_json, session_json, stat_json
from km.server.state import CONFIG, PRINCIPAL, STORE


async def get_sessions(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    query = request.rel_url.query
    limit = limit_param(query, config.default_page, config.max_page)
    page = await request.app[STORE].list_sessions(
        request[PRINCIPAL].account_id, cursor_param(query), limit, filter_param(query)
    )
    return json_response(
        {"sessions": [session_json(s) for s in page.items], "next_cursor": page.next_cursor}
    )


async def get_events(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    query = request.rel_url.query
    filters = event_filter(query)
    limit = limit_param(query, config.default_page, config.max_page)
    page = await request.app[STORE].list_events(
        request[PRINCIPAL].account_id, filters, cursor_param(query), limit
    )
    return json_response(
        {"events": [event_json(e) for e in page.items], "next_cursor": page.next_cursor}
    )


async def get_stats(request: web.Request) -> web.Response:
    query = request.rel_url.query
    since_ns, until_ns = time_range(query)
    model, price = model_param(query)
    stats = await request.app[STORE].stats(request[PRINCIPAL].account_id, since_ns, until_ns)
    return json_response({"stats": [stat_json(s, price) for s in stats], "model": model})
