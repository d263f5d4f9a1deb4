"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from km.server.audit_writer import AuditWriter
from km.server.config import ServerConfig
from km.server.insight import Ingest
from km.server.logonce import LogOnce
from km.server.ratelimit import RateLimiter
from km.server.redaction import CleanCheck, Redactor
from km.server.stores.base import EventStore


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the account of the authenticated key."""

    account_id: int
    key_id: int


STORE = web.AppKey("store", EventStore)
CONFIG = web.AppKey("config", ServerConfig)
LIMITER = web.AppKey("limiter", RateLimiter)
AUTH_FAILURES = web.AppKey("auth_failures", RateLimiter)  # per client address
REDACTOR: web.AppKey[Redactor | None] = web.AppKey("redactor")
REDACT_CLEAN: web.AppKey[CleanCheck | None] = web.AppKey("redact_clean")  # its batch pre-scan
AUDIT = web.AppKey("audit", AuditWriter)
LOG_ONCE = web.AppKey("log_once", LogOnce)
INSIGHT = web.AppKey("insight", Ingest)  # the session analyzers (km.server.insight)
PRINCIPAL = web.RequestKey("principal", Principal)
