"""One HTTP/1.1 client connection: h11 (the sans-IO protocol state machine) over asyncio streams.

h11 parses and frames; this shell only moves bytes and enforces the limits: a response's head
is at most `MAX_HEAD_BYTES`, its body at most the caller's `max_body` (refused as soon as the
`Content-Length` says so, or the bytes read pass it). Timeouts are the caller's
(`asyncio.timeout` around `open` and `request`); a connection whose request did not end cleanly
must be aborted, never reused. TLS is asyncio's (`ssl=` a verifying context), only for https.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import h11

if TYPE_CHECKING:
    import ssl

READ_CHUNK = 64 * 1024  # bytes per read of a response
MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one response
CLOSE_WAIT_S = 1.0  # a polite close (TLS close_notify) waits this long, then gives up
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: `scheme://host:port`, and the path every request target starts with."""

    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def authority(self) -> str:
        """The `Host` header: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    def target(self, path_and_query: str) -> bytes:
        """The request target of `path_and_query` under the base path; ASCII (raises
        `ValueError` otherwise: the URL is not usable as given)."""
        return (self.base_path.rstrip("/") + path_and_query).encode("ascii")


def parse_origin(url: str) -> Origin:
    """An `http(s)://host[:port][/base]` URL as an `Origin`; `ValueError` with the reason."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("expected an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise ValueError("no host in the URL")
    port = parts.port or DEFAULT_PORTS[scheme]  # `.port` raises ValueError when not a number
    return Origin(scheme, host, port, parts.path)


class Closed(ConnectionError):
    """The server closed the connection (or reset it) before the response was complete.
    `nothing` is True when not one byte of a response had arrived: on a reused keep-alive
    connection that means the server had closed it while idle, and the request may be sent
    again on a new one."""

    def __init__(self, nothing: bool, detail: str) -> None:
        super().__init__(detail)
        self.nothing = nothing


class TooLarge(ValueError):
    """The response body is over the caller's limit."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case; of a repeated header, the last value
    body: bytes


class Connection:
    """One connection to one origin, one request at a time. `open()` it, `request()` on it
    while `reusable`, `abort()` it after any failure, `close()` it at the end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.requests = 0  # requests sent on this connection (keep-alive reuse shows as > 1)

    @classmethod
    async def open(cls, origin: Origin, tls: ssl.SSLContext | None) -> Connection:
        """Connect (and, with `tls`, do the handshake, verifying the server's certificate for
        `origin.host`). Raises `OSError` (including `ssl.SSLError`)."""
        if tls is None:
            reader, writer = await asyncio.open_connection(origin.host, origin.port)
        else:
            reader, writer = await asyncio.open_connection(
                origin.host, origin.port, ssl=tls, server_hostname=origin.host
            )
        return cls(reader, writer)

    @property
    def reusable(self) -> bool:
        """Idle, both ways, and not closed by the server meanwhile (an EOF, or stray bytes,
        that arrived while idle)."""
        return (
            self._h11.our_state is h11.IDLE
            and self._h11.their_state is h11.IDLE
            and not self._writer.is_closing()
            and not self._reader.at_eof()
            and not self._h11.trailing_data[0]  # bytes nobody asked for: out of step
            and not getattr(self._reader, "_buffer", b"")  # asyncio's: no public accessor
        )

    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[str, str]],
        body: bytes | None,
        max_body: int,
    ) -> Response:
        """Send one request and read its whole response. Raises `Closed`, `TooLarge`,
        `h11.RemoteProtocolError` (a response that is not HTTP/1.1) and `OSError`."""
        self.requests += 1
        h = self._h11
        head = list(headers)
        if body is not None:
            head.append(("Content-Length", str(len(body))))
        events: list[h11.Event] = [h11.Request(method=method, target=target, headers=head)]
        if body:
            events.append(h11.Data(data=body))
        for event in (*events, h11.EndOfMessage()):
            for piece in h.send_with_data_passthrough(event) or ():
                self._writer.write(piece)  # the body as given: not copied into one buffer
        try:
            await self._writer.drain()
        except ConnectionError:
            pass  # the server may have answered and closed early (a 413): read what it said
        return await self._response(max_body)

    async def _response(self, max_body: int) -> Response:
        h = self._h11
        received = 0
        status = 0
        headers: dict[str, str] = {}
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                if not received:  # (h11 has moved their state to ERROR by now)
                    raise Closed(True, "the server closed the connection") from None
                if self._reader.at_eof():
                    detail = f"the server closed the connection mid-response ({exc})"
                    raise Closed(False, detail) from None
                raise
            if event is h11.NEED_DATA:
                try:
                    data = await self._reader.read(READ_CHUNK)
                except ConnectionError as exc:
                    if not received:
                        raise Closed(True, f"the server reset the connection ({exc})") from None
                    raise Closed(False, "the server reset the connection mid-response") from None
                received += len(data)
                h.receive_data(data)  # b"": end of stream, which h11 judges
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
                length = headers.get("content-length", "")
                if length.isdigit() and int(length) > max_body:
                    raise TooLarge(f"the response is larger than {max_body} bytes ({length})")
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_body:
                    raise TooLarge(f"the response is larger than {max_body} bytes")
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover - h11 raises first
                raise Closed(not received, "the server closed the connection")
            # h11.InformationalResponse (100 Continue and the like): nothing to do
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()  # keep-alive: the next request goes on this connection
        return Response(status, headers, b"".join(parts))

    def abort(self) -> None:
        """Drop the connection now (after a timeout, a cancellation or any failure)."""
        transport = self._writer.transport
        with contextlib.suppress(Exception):
            transport.abort()

    async def close(self) -> None:
        """Close politely (TLS sends close_notify), waiting at most `CLOSE_WAIT_S`."""
        with contextlib.suppress(Exception):
            self._writer.close()
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self._writer.wait_closed()
        self.abort()
