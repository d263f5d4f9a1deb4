"""`POST /api/v1/events`: read the body with its cap, validate, redact, store, answer."""

from __future__ import annotations

import asyncio
import functools

from aiohttp import hdrs, web

from km.server.batch import parse_batch, plan_batch, response_body
from km.server.body import BodyDecoder, wire_limit
from km.server.config import READ_CHUNK
from km.server.errors import BodyTooLarge, RequestTimeout
from km.server.handlers import json_response
from km.server.insight import count_missing_tokens
from km.server.state import CONFIG, INSIGHT, PRINCIPAL, REDACT_CLEAN, REDACTOR, STORE


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The decoded body: at most `limit` bytes after decompression, else `BodyTooLarge`
    before reading (or inflating) any more than needed to know; all of it within `timeout_s`,
    else `RequestTimeout` (a body sent a byte at a time would hold a connection for ever)."""
    decoder = BodyDecoder(request.headers.get(hdrs.CONTENT_ENCODING), limit)
    length = request.content_length
    if length is not None and length > wire_limit(limit):
        raise BodyTooLarge("request body", limit)
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.content.iter_chunked(READ_CHUNK):
                decoder.feed(chunk)
    except TimeoutError:
        raise RequestTimeout(timeout_s) from None
    return decoder.finish()


async def post_events(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await read_body(request, config.max_batch_bytes, config.body_timeout_s)
    items = parse_batch(body, config.max_batch_events)
    plan = plan_batch(items, request.app[REDACTOR], request.app[REDACT_CLEAN])
    store, insight = request.app[STORE], request.app[INSIGHT]
    account_id = request[PRINCIPAL].account_id
    # The analyzers (km.insight's, as in the capture process) see each new event once: inside
    # the store's transaction; a failed one sends the batch's sessions back to be rebuilt.
    count_missing_tokens(plan.events)
    try:
        await insight.prepare(store, account_id, plan.events)
        result = await store.ingest(
            account_id, plan.events, functools.partial(insight.analyse, account_id)
        )
    except BaseException:
        insight.forget(account_id, plan.events)
        raise
    return json_response(response_body(plan, result))
