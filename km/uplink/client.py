"""The HTTP side of the uplink: one aiohttp `ClientSession` per uplink, keep-alive to the API.

The key goes in the session's `Authorization: Bearer` header and nowhere else: the client's
`repr` masks it, transport errors are described from scratch and scrubbed of it, and redirects
are not followed (a redirect elsewhere could carry the header to another host; the user is told
to fix the URL instead). Responses are read whole, up to `MAX_RESPONSE_BYTES`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from types import TracebackType

import aiohttp

from km import __version__
from km.uplink.errors import UplinkError
from km.uplink.secret import Scrubber, Secret, display_url

REQUEST_TIMEOUT_S = 30.0  # one whole request; well under the 60 s lease on the events it carries
CONNECT_TIMEOUT_S = 10.0  # TCP + TLS set-up
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # an ingest answer lists ids: ~200 KB for 5,000 events
READ_CHUNK = 64 * 1024
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


def endpoint(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


class ApiClient:
    """Requests to one API with one key. Use as `async with ApiClient(...) as client:`."""

    def __init__(
        self,
        url: str,
        key: Secret,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.shown_url = display_url(url)
        self._key = key
        self.scrub = Scrubber(key.reveal())
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None

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
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={
                    "Authorization": f"Bearer {self._key.reveal()}",
                    "User-Agent": USER_AGENT,
                },
                timeout=self._timeout,
                raise_for_status=False,
            )
        return self._session

    async def post_events(self, body: bytes, *, gzipped: bool) -> Reply:
        """POST a batch body (already gzipped when `gzipped`); raises `TransportError`."""
        headers = {"Content-Type": "application/json"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return await self._request("POST", endpoint(self.url, INGEST_PATH), body, headers)

    async def check_key(self) -> Reply:
        """An authenticated, read-only request: 200 when the key is good, 401/403 when not."""
        return await self._request("GET", endpoint(self.url, CHECK_PATH) + "?limit=1", None, {})

    async def get(self, path_and_query: str) -> Reply:
        """An authenticated GET of a read-side path (`/api/v1/events?...`), for the views;
        raises `TransportError`."""
        return await self._request("GET", endpoint(self.url, path_and_query), None, {})

    async def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> Reply:
        try:
            async with self._http().request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                data = await _read_capped(resp)
                return Reply(resp.status, {k: v for k, v in resp.headers.items()}, data)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            raise TransportError(self.shown_url, "timed out") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise TransportError(self.shown_url, self.scrub(describe(exc))) from None


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise aiohttp.ClientPayloadError(
                f"the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )
        parts.append(chunk)
    return b"".join(parts)


def describe(exc: BaseException) -> str:
    """One line about a transport failure, built from parts that cannot hold the key."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"bad response body: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad response: {exc.status} {exc.message}"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL {display_url(str(exc.url))}"
    if isinstance(exc, OSError):
        return _os_reason(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _os_reason(exc: OSError) -> str:
    """`Connection refused` rather than asyncio's `Connect call failed ('127.0.0.1', 9)`."""
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or type(exc).__name__
