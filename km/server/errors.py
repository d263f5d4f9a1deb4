"""Typed errors of the server. Library code raises them; the HTTP layer maps each type onto a
status code (`km.server.app`) and the CLI onto an exit code (`KmError.exit_code`)."""

from __future__ import annotations

from km.errors import KmError


class StoreError(KmError):
    """The event store failed in a way a retry will not fix by itself."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"event store {where}: {reason}")
        self.where = where
        self.reason = reason


class StoreUnavailable(StoreError):
    """The store cannot be reached now (closed, connection refused, locked): retry later."""


class StoreTooNew(StoreError):
    """The database was migrated by a newer km whose schema this km does not know."""

    def __init__(self, where: str, version: int, known: int) -> None:
        super().__init__(
            where,
            f"schema version {version} is newer than this km understands ({known}); upgrade km",
        )
        self.version = version
        self.known = known


class ListenError(KmError):
    """`km serve` cannot listen where it was told to (port in use, no such address)."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {listen_problem(host, exc)}")
        self.host = host
        self.port = port


def listen_problem(host: str, exc: OSError) -> str:
    """What a failed bind means, and what to do about it."""
    import errno
    import socket

    if isinstance(exc, socket.gaierror):
        return f"no such address {host!r} (give --host an address such as 127.0.0.1)"
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use (another km serve?): stop it, or pick another with --port"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges): pick another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: give --host one of its addresses"
    reason = exc.strerror or str(exc)
    return f"{reason} (check --host and --port)"


class NotFound(KmError):
    """An account or key named on the command line does not exist."""

    def __init__(self, what: str, value: object) -> None:
        super().__init__(
            f"no {what} {value!r} (see `km serve keys list`, `km serve accounts list`)"
        )
        self.what = what
        self.value = value


class UnknownTool(KmError):
    """A server or tool to approve that the account's inventory does not hold (404)."""

    def __init__(self, server: str, tool: str | None) -> None:
        what = f"tool {tool!r} of server {server!r}" if tool else f"server {server!r}"
        super().__init__(f"no {what} in a current tools/list of this account: nothing to approve")
        self.server = server
        self.tool = tool


class BadRequest(KmError):
    """The request cannot be understood: not JSON, no `events` array, a bad query parameter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadCursor(BadRequest):
    """A pagination cursor that this server did not issue."""

    def __init__(self, cursor: str) -> None:
        super().__init__(f"cursor {cursor[:40]!r} is not valid: pass back a next_cursor unchanged")
        self.cursor = cursor


class BodyTooLarge(KmError):
    """The request body (after decompression) or its event count is over the limit."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is over the limit of {limit}: split the batch")
        self.what = what
        self.limit = limit


class UnsupportedEncoding(KmError):
    """A `Content-Encoding` other than identity or gzip."""

    def __init__(self, encoding: str) -> None:
        super().__init__(f"Content-Encoding {encoding!r} is not supported: send gzip or identity")
        self.encoding = encoding


class Unauthorized(KmError):
    """No API key, or one the server does not know (401)."""


class Forbidden(KmError):
    """A revoked API key (403)."""


class RateLimited(KmError):
    """The key spent its request budget (429); `retry_after_s` until the next one passes."""

    def __init__(
        self, retry_after_s: float, what: str = "rate limit reached for this API key"
    ) -> None:
        super().__init__(f"{what}: retry after Retry-After seconds")
        self.retry_after_s = retry_after_s


class RequestTimeout(KmError):
    """The request body did not arrive in time (408)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the request body did not arrive within {timeout_s:g} s: send it faster")
        self.timeout_s = timeout_s
