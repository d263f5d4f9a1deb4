"""The aiohttp application: routes, the error and auth middlewares, and what they share.

Serve it with `RUNNER_OPTIONS` (`auto_decompress=False`): the ingest handler decompresses
request bodies itself, with a cap (km.server.body); aiohttp's own decompression would not be
capped by `max_batch_bytes`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from km.errors import KmError
from km.redact import redact_text
from km.server.audit_writer import AuditWriter, audit_writer_ctx
from km.server.auth import auth_middleware
from km.server.config import ServerConfig
from km.server.errors import (
    BadRequest,
    BodyTooLarge,
    Forbidden,
    NotFound,
    RateLimited,
    RequestTimeout,
    StoreUnavailable,
    Unauthorized,
    UnknownTool,
    UnsupportedEncoding,
)
from km.server.guard import connection_middleware
from km.server.handlers import json_response
from km.server.handlers.admin import get_audit, get_retention
from km.server.handlers.health import get_health, get_ready
from km.server.handlers.ingest import post_events
from km.server.handlers.insight import get_findings, get_tools, post_approve
from km.server.handlers.openapi import get_openapi
from km.server.handlers.read import get_events, get_sessions, get_stats
from km.server.insight import Ingest
from km.server.logonce import LogOnce
from km.server.ratelimit import RateLimiter, retry_after_header
from km.server.redaction import load_clean_check, load_redactor
from km.server.state import (
    AUDIT,
    AUTH_FAILURES,
    CONFIG,
    INSIGHT,
    LIMITER,
    LOG_ONCE,
    REDACT_CLEAN,
    REDACTOR,
    STORE,
)
from km.server.stores.base import EventStore

log = logging.getLogger("km.server")

RUNNER_OPTIONS: dict[str, Any] = {"auto_decompress": False, "access_log": None}
SERVER_NAME = "km"  # the Server header: no version for a scanner to match
# On every JSON answer: never sniffed as something else, never kept by a cache or proxy.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
STORE_RETRY_AFTER_S = 1  # Retry-After on a 503 from an unavailable store
# What a client is told when the store fails: never which database, host, port or driver.
UNAVAILABLE = "the event store is closed or unreachable: retry later"
INTERNAL = "internal server error: retry later"

# (method, path, handler): openapi.py documents exactly these (a test checks both ways).
ROUTES = (
    ("POST", "/api/v1/events", post_events),
    ("GET", "/api/v1/events", get_events),
    ("GET", "/api/v1/sessions", get_sessions),
    ("GET", "/api/v1/stats", get_stats),
    ("GET", "/api/v1/audit", get_audit),
    ("GET", "/api/v1/retention", get_retention),
    ("GET", "/api/v1/findings", get_findings),
    ("GET", "/api/v1/tools", get_tools),
    ("POST", "/api/v1/tools/approve", post_approve),
    ("GET", "/health", get_health),
    ("GET", "/ready", get_ready),
    ("GET", "/api/v1/openapi.json", get_openapi),
)

_STATUS: tuple[tuple[type[KmError], int], ...] = (
    (BadRequest, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (UnknownTool, 404),
    (RequestTimeout, 408),
    (BodyTooLarge, 413),
    (UnsupportedEncoding, 415),
    (RateLimited, 429),
    (StoreUnavailable, 503),
)


def status_of(exc: KmError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is JSON `{"error": "..."}` with its status."""
    try:
        return await handler(request)
    except KmError as exc:
        status = status_of(exc)
        headers: dict[str, str] = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = retry_after_header(exc.retry_after_s)
        elif isinstance(exc, StoreUnavailable):
            headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
        if status >= 500:
            # The detail (which database, where, what the driver said) is for the operator's
            # log, once per cause; the client learns only that it should retry.
            log_once(request.app, request.method, request.path, exc)
            message = UNAVAILABLE if isinstance(exc, StoreUnavailable) else INTERNAL
            return json_response({"error": message}, status=status, headers=headers)
        return json_response({"error": str(exc)}, status=status, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return json_response({"error": exc.reason}, status=exc.status, headers=headers)
    except ConnectionResetError:
        raise  # the client went away mid-request: nobody to answer, nothing to log
    except Exception as exc:
        log_once(request.app, request.method, request.path, exc, unexpected=True)
        return json_response({"error": INTERNAL}, status=500)


def log_once(
    app: web.Application, method: str, path: str, exc: Exception, *, unexpected: bool = False
) -> None:
    """Log `exc` unless the same cause was logged recently (`LogOnce`): a store that went away
    fails every request the same way, and one line says it."""
    repeats = app[LOG_ONCE].check((type(exc), str(exc)), time.monotonic())
    if repeats is None:
        return
    more = f" ({repeats} more since last logged)" if repeats else ""
    if unexpected:
        log.exception("%s %s: unexpected error%s", method, path, more)
    else:
        log.warning("%s %s: %s%s", method, path, exc, more)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[hdrs.SERVER] = SERVER_NAME
    if response.content_type == "application/json":
        response.headers.update(SECURITY_HEADERS)


def make_app(store: EventStore, config: ServerConfig) -> web.Application:
    """The API over `store` (which the caller opens, migrates and closes)."""
    app = web.Application(middlewares=[connection_middleware, error_middleware, auth_middleware])
    app.on_response_prepare.append(_security_headers)
    app[STORE] = store
    app[CONFIG] = config
    app[LIMITER] = RateLimiter(config.rate_limit)
    app[AUTH_FAILURES] = RateLimiter(config.auth_failure_limit)
    app[REDACTOR] = load_redactor()
    app[REDACT_CLEAN] = load_clean_check()
    app[LOG_ONCE] = LogOnce()
    app[AUDIT] = AuditWriter(int(config.audit_window_s * 1e9))
    app.cleanup_ctx.append(audit_writer_ctx)
    app[INSIGHT] = Ingest(app[REDACTOR], redact_text)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app
