"""The account's administrative side: its audit log and its retention (read-only here: it is
changed by the operator, `km serve retention set`, since any key of an account is an ingest
key and a leaked one must not be able to shorten how long the account's data is kept)."""

from __future__ import annotations

from aiohttp import web

from km.server.audit import entry_json
from km.server.handlers import json_response
from km.server.params import cursor_param, limit_param
from km.server.retention import MAX_DAYS, MIN_DAYS
from km.server.state import CONFIG, PRINCIPAL, STORE


async def get_audit(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    query = request.rel_url.query
    limit = limit_param(query, config.default_page, config.max_page)
    page = await request.app[STORE].list_audit(
        request[PRINCIPAL].account_id, cursor_param(query), limit
    )
    return json_response(
        {"entries": [entry_json(e) for e in page.items], "next_cursor": page.next_cursor}
    )


async def get_retention(request: web.Request) -> web.Response:
    account_id = request[PRINCIPAL].account_id
    accounts = await request.app[STORE].list_accounts()
    days = next(a.retention_days for a in accounts if a.id == account_id)
    return json_response({"days": days, "min_days": MIN_DAYS, "max_days": MAX_DAYS})
