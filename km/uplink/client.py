"""The HTTP side of the uplink: one keep-alive HTTP/1.1 connection to the API per client.

The connection is h11 over asyncio streams (`km.uplink.http1`), not aiohttp: the background
uplink runs in every delivering km capture process, and aiohttp cost that process ~14 MB of
memory for one connection's worth of requests (`import km.uplink.client` added 25 MB; now
~0.5 MB on top of asyncio). aiohttp stays for `km serve` only.

The key goes in each request's `Authorization: Bearer` header and nowhere else: the client's
`repr` masks it, transport errors are described from scratch and scrubbed of it, and redirects
are not followed (a redirect elsewhere could carry the header to another host; the user is told
to fix the URL instead). Responses are read whole, up to `MAX_RESPONSE_BYTES`. https verifies
the server's certificate (the system's CAs, or `KM_CA_BUNDLE`); plain http builds no TLS
context at all. A request on a reused connection that the server had closed while idle is sent
again once on a new connection (nothing of it was answered; ingest is idempotent by event id).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl  # asyncio imports it anyway; a context is only built for https
from dataclasses import dataclass
from types import TracebackType

import h11

from km import __version__
from km.uplink.errors import InsecureTransport, UplinkError
from km.uplink.http1 import Closed, Connection, Origin, TooLarge, parse_origin
from km.uplink.secret import Scrubber, Secret, display_url

REQUEST_TIMEOUT_S = 30.0  # one whole request; well under the 60 s lease on the events it carries
CONNECT_TIMEOUT_S = 10.0  # TCP + TLS set-up
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # an ingest answer lists ids: ~200 KB for 5,000 events
INGEST_PATH = "/api/v1/events"
CHECK_PATH = "/api/v1/sessions"  # any authenticated, read-only endpoint will do to check a key
USER_AGENT = f"km/{__version__}"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class TransportError(UplinkError):
    """No (complete) response: connection refused or reset, DNS, TLS, timeout."""

    def __init__(self, url: str, description: str) -> None:
        super().__init__(f"{url}: {description}")
        self.url = url
        self.description = description


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1: traffic that never leaves this machine."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(url: str, allow_insecure_http: bool) -> None:
    """Raise `InsecureTransport` for an `http://` URL to a host that is not loopback, unless
    the user allowed it explicitly (`KM_ALLOW_INSECURE_HTTP=1`): the API key would cross the
    network in clear."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return  # the request reports the bad URL itself
    if parts.scheme.lower() == "http" and not allow_insecure_http and not is_loopback(host):
        raise InsecureTransport(display_url(url), host)


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificates verified against the system's CAs, or only against `ca_bundle` (a PEM
    file, `KM_CA_BUNDLE`) when given. Raises `UplinkError` when the bundle cannot be read."""
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UplinkError(f"CA bundle {ca_bundle}: {reason} (KM_CA_BUNDLE)") from None


class ApiClient:
    """Requests to one API with one key. Use as `async with ApiClient(...) as client:`.
    Requests on one client go one at a time, over one keep-alive connection."""

    def __init__(
        self,
        url: str,
        key: Secret,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        ca_bundle: str | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        """Raises `InsecureTransport` (plain http to another machine, not allowed) and
        `UplinkError` (an unreadable CA bundle) before any connection is made."""
        check_transport(url, allow_insecure_http)
        self._tls = tls_context(ca_bundle) if url.lower().startswith("https:") else None
        self.url = url
        self.shown_url = display_url(url)
        self._key = key
        self.scrub = Scrubber(key.reveal())
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._conn: Connection | None = None
        self._turn: asyncio.Lock | None = None  # one request at a time on the one connection
        self.connections = 0  # connections opened so far (keep-alive: stays at 1 while it works)

    def __repr__(self) -> str:
        return f"ApiClient({self.shown_url!r}, {self._key!r})"

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def post_events(self, body: bytes, *, gzipped: bool) -> Reply:
        """POST a batch body (already gzipped when `gzipped`); raises `TransportError`."""
        headers = [("Content-Type", "application/json")]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        return await self._request("POST", INGEST_PATH, body, headers)

    async def check_key(self) -> Reply:
        """An authenticated, read-only request: 200 when the key is good, 401/403 when not."""
        return await self._request("GET", CHECK_PATH + "?limit=1", None, [])

    async def get(self, path_and_query: str) -> Reply:
        """An authenticated GET of a read-side path (`/api/v1/events?...`), for the views;
        raises `TransportError`."""
        return await self._request("GET", path_and_query, None, [])

    async def _request(
        self, method: str, path: str, body: bytes | None, headers: list[tuple[str, str]]
    ) -> Reply:
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            try:
                origin = parse_origin(self.url)
                target = origin.target(path)
            except ValueError as exc:
                raise TransportError(self.shown_url, f"invalid URL ({exc})") from None
            head = [
                ("Host", origin.authority),
                ("Authorization", f"Bearer {self._key.reveal()}"),
                ("User-Agent", USER_AGENT),
                *headers,
            ]
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await self._exchange(origin, method, target, head, body)
            except TimeoutError:
                self._drop()
                raise TransportError(self.shown_url, "timed out") from None
            except (OSError, ValueError, h11.ProtocolError) as exc:
                self._drop()
                raise TransportError(self.shown_url, self.scrub(describe(exc, origin))) from None
            except BaseException:  # cancelled mid-request: the connection is out of step
                self._drop()
                raise

    async def _exchange(
        self,
        origin: Origin,
        method: str,
        target: bytes,
        head: list[tuple[str, str]],
        body: bytes | None,
    ) -> Reply:
        conn = self._conn
        if conn is not None and not conn.reusable:
            self._drop()
            conn = None
        if conn is not None:
            try:
                response = await conn.request(method, target, head, body, MAX_RESPONSE_BYTES)
                return Reply(response.status, response.headers, response.body)
            except Closed as exc:
                if not exc.nothing:
                    raise
                self._drop()  # closed by the server while idle: once more, on a new connection
        conn = self._conn = await self._connect(origin)
        response = await conn.request(method, target, head, body, MAX_RESPONSE_BYTES)
        return Reply(response.status, response.headers, response.body)

    async def _connect(self, origin: Origin) -> Connection:
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                conn = await Connection.open(origin, self._tls)
        except TimeoutError:
            raise ConnectTimeout(origin) from None
        self.connections += 1
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()


class ConnectTimeout(OSError):
    """Internal: no TCP (and TLS) connection within the connect timeout."""

    def __init__(self, origin: Origin) -> None:
        super().__init__(f"no connection to {origin.host}:{origin.port} within the timeout")
        self.origin = origin


def describe(exc: BaseException, origin: Origin) -> str:
    """One line about a transport failure, built from parts that cannot hold the key."""
    where = f"{origin.host}:{origin.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the TLS certificate of {where} cannot be verified "
            f"({exc.verify_message}); if the API uses a private CA, set KM_CA_BUNDLE"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {where} failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, ConnectTimeout):
        return f"cannot connect to {where}: timed out"
    if isinstance(exc, Closed):
        return str(exc)
    if isinstance(exc, TooLarge):
        return f"bad response body: {exc}"
    if isinstance(exc, h11.LocalProtocolError):  # its text may quote the header: leave it out
        return "the request is not valid HTTP: is there a stray character in the URL or key?"
    if isinstance(exc, h11.RemoteProtocolError):
        return f"bad HTTP response from {where}: {exc}"
    if isinstance(exc, OSError):
        return f"cannot connect to {where}: {_os_reason(exc)}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _os_reason(exc: OSError) -> str:
    """`Connection refused` rather than asyncio's `Connect call failed ('127.0.0.1', 9)`;
    a resolver's own words (`Name or service not known`)."""
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__
