"""Authentication and per-key rate limiting, as one middleware: Bearer key -> SHA-256 ->
`find_key`. Unknown or missing: 401; revoked: 403; over the key's rate: 429. Requests refused
for their key also spend a token of their client address's bucket; an address out of tokens
gets 429 before its key is even looked up (guessing keys, or a flood of bad ones, is slowed
down, and the store is not asked for each)."""

from __future__ import annotations

import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from km.server.audit import MISSING, REVOKED, THROTTLED, UNKNOWN, shown_prefix
from km.server.errors import Forbidden, RateLimited, Unauthorized
from km.server.keys import DISPLAY_PREFIX_LEN, KEY_PREFIX, hash_key, parse_bearer
from km.server.state import AUDIT, AUTH_FAILURES, LIMITER, PRINCIPAL, STORE, Principal

PUBLIC_PATHS = frozenset({"/health", "/ready", "/api/v1/openapi.json"})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    if request.match_info.http_exception is not None or route.resource is None:
        return await handler(request)  # 404/405: nothing to protect
    if route.resource.canonical in PUBLIC_PATHS:
        return await handler(request)
    now = time.monotonic()
    address = request.remote or "-"
    failures = request.app[AUTH_FAILURES]
    key = parse_bearer(request.headers.get(hdrs.AUTHORIZATION))
    wait = failures.wait(address, now)
    if wait > 0:  # this address keeps sending bad keys: refuse before looking the key up
        _refused(request, address, key, THROTTLED)
        raise RateLimited(wait, "too many requests with a bad API key from this address")
    if key is None:
        failures.check(address, now)
        _refused(request, address, key, MISSING)
        raise Unauthorized("missing API key: send `Authorization: Bearer km_live_...`")
    record = await request.app[STORE].find_key(hash_key(key))
    if record is None:
        failures.check(address, now)
        _refused(request, address, key, UNKNOWN)
        raise Unauthorized("unknown API key: check KM_API_KEY (km serve keys list shows prefixes)")
    if record.revoked:
        failures.check(address, now)
        _refused(request, address, key, REVOKED, record.account_id)
        raise Forbidden(
            f"API key {record.prefix}... was revoked: create a new one with `km serve keys create`"
        )
    wait = request.app[LIMITER].check(record.id, now)
    if wait > 0:
        raise RateLimited(wait)
    request[PRINCIPAL] = Principal(record.account_id, record.id)
    return await handler(request)


def _refused(
    request: web.Request, address: str, key: str | None, reason: str, account: int | None = None
) -> None:
    """Count a refused sign-in for the audit log (written per window, `AuditWriter`)."""
    prefix = shown_prefix(key, KEY_PREFIX, DISPLAY_PREFIX_LEN)
    request.app[AUDIT].rollup.add(time.time_ns(), address, prefix, reason, account)
