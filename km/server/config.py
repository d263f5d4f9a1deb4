"""The server's one configuration object. The CLI builds it from `Settings` and flags; the app
and the handlers read it, nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from km.server.ratelimit import RateLimit

MIB = 1024 * 1024

DEFAULT_HOST = "127.0.0.1"  # loopback: exposing the API is a deliberate choice (--host 0.0.0.0)
DEFAULT_PORT = 8477
DEFAULT_MAX_BATCH_BYTES = 8 * MIB  # docs/api.md: per request, after decompression
DEFAULT_MAX_BATCH_EVENTS = 5000  # docs/api.md
DEFAULT_RATE = 50.0  # requests per second per key: 250,000 events/s at full batches
DEFAULT_BURST = 100.0  # requests a key may send at once after idling (an uplink catching up)
DEFAULT_PAGE = 100  # read side: items per page when `limit` is not given
MAX_PAGE = 1000  # read side: the largest `limit` accepted
READY_TIMEOUT_S = 2.0  # /ready answers 503 when the store takes longer than this to answer
READ_CHUNK = 64 * 1024  # request bodies are read and decoded this much at a time
DEFAULT_RATE_LIMIT = RateLimit(DEFAULT_RATE, DEFAULT_BURST)
# Requests with a missing, unknown or revoked key, per client address: 30 at once, then one a
# second. Past it the address gets 429 without its key being looked up.
AUTH_FAILURE_LIMIT = RateLimit(1.0, 30.0)
DEFAULT_HEADER_TIMEOUT_S = 10.0  # a request's headers (or a TLS handshake) must arrive in this
DEFAULT_IDLE_TIMEOUT_S = 30.0  # a kept-alive connection with no request is closed after this
DEFAULT_BODY_TIMEOUT_S = 60.0  # a request body must arrive in this (408 after)
DEFAULT_MAX_CONNECTIONS = 4096  # and always below the open-file limit (km.server.guard)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS
    rate_limit: RateLimit = DEFAULT_RATE_LIMIT
    default_page: int = DEFAULT_PAGE
    max_page: int = MAX_PAGE
    ready_timeout_s: float = READY_TIMEOUT_S
    auth_failure_limit: RateLimit = AUTH_FAILURE_LIMIT
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    audit_window_s: float = 60.0  # refused sign-ins are written as one row per this window
    tls_cert: str | None = None
    tls_key: str | None = None
    reuse_port: bool = False  # SO_REUSEPORT: several processes serve one port (one per core)
