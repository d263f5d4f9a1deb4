"""The uplink's HTTP client (h11 over asyncio streams) against real loopback servers: an aiohttp
application for keep-alive and redirects, and raw sockets for what no well-behaved server does
(closing mid-response, a body past the limit, never answering, a reused connection closed under
the client, an answer that echoes the key). Every wait is bounded; no timings are asserted."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
from aiohttp import web

from km.uplink.client import MAX_RESPONSE_BYTES, ApiClient, Reply, TransportError
from km.uplink.http1 import parse_origin
from km.uplink.secret import Secret
from tests.uplink.fake_api import ServerThread

KEY = "km_live_0123456789abcdefghijklmnopqrstuv"
WAIT_S = 30.0  # the bound on any one exchange in these tests
T = TypeVar("T")
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def run(fn: Callable[[ApiClient], Awaitable[T]], url: str, timeout_s: float = WAIT_S) -> T:
    """`fn(client)`, awaited on a fresh loop with a client of `url`."""

    async def main() -> T:
        client = ApiClient(url, Secret(KEY), timeout_s=timeout_s)
        async with asyncio.timeout(WAIT_S), client:
            return await fn(client)

    return asyncio.run(main())


def read_request(conn: socket.socket) -> bytes:
    """One request's head and its Content-Length body (all these tests send); b"" at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        body += chunk
    return head


@contextmanager
def raw_server(handle: Callable[[socket.socket, int], None]) -> Iterator[tuple[str, list[int]]]:
    """A loopback server calling `handle(conn, n)` for its n-th connection (from 0) on a thread;
    yields its URL and a list that counts connections. Ends with the test."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()
    accepted: list[int] = []
    threads: list[threading.Thread] = []

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            n = len(accepted)
            accepted.append(n)
            conn.settimeout(WAIT_S)

            def one(conn: socket.socket = conn, n: int = n) -> None:
                with conn:
                    try:
                        handle(conn, n)
                    except OSError:
                        pass

            thread = threading.Thread(target=one, daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        done.set()
        acceptor.join(5)
        listener.close()
        for thread in threads:
            thread.join(WAIT_S)


def assert_no_key(exc: BaseException) -> None:
    assert KEY not in str(exc) and KEY not in repr(exc)


# -- keep-alive -----------------------------------------------------------------------------


def test_requests_reuse_one_keep_alive_connection() -> None:
    peers: list[object] = []
    seen: list[dict[str, str]] = []

    async def ingest(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        seen.append(dict(request.headers))
        await request.read()
        return web.json_response({"ok": True})

    body = gzip.compress(b'{"events": []}' * 200)
    app = web.Application()
    app.router.add_post("/base/api/v1/events", ingest)
    server = ServerThread()
    try:
        url = server.start(app) + "/base/"

        async def three(client: ApiClient) -> tuple[list[Reply], int]:
            replies = [await client.post_events(body, gzipped=True) for _ in range(3)]
            return replies, client.connections

        replies, connections = run(three, url)
    finally:
        server.close()
    assert [r.status for r in replies] == [200, 200, 200]
    assert replies[0].body == b'{"ok": true}'
    assert connections == 1 and len(set(peers)) == 1 and len(peers) == 3
    headers = seen[0]
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Content-Encoding"] == "gzip" and headers["Content-Length"] == str(len(body))
    assert headers["Host"] == url.split("//")[1].split("/")[0]


@pytest.mark.parametrize("when", ["after answering", "instead of answering"])
def test_a_connection_the_server_closed_is_replaced_once(when: str) -> None:
    """The server closes the keep-alive connection after its first answer: either before the
    second request (the client sees the EOF and connects again), or upon it, unanswered (as
    when its keep-alive timer fires at that moment: the request is sent again, once)."""

    def handle(conn: socket.socket, n: int) -> None:
        if n == 0:
            read_request(conn)
            conn.sendall(OK)  # keep-alive, then closed
            if when == "instead of answering":
                read_request(conn)
            return
        while read_request(conn):
            conn.sendall(OK)

    with raw_server(handle) as (url, accepted):

        async def twice(client: ApiClient) -> tuple[int, int, int]:
            first = await client.post_events(b"{}", gzipped=False)
            second = await client.post_events(b"{}", gzipped=False)
            return first.status, second.status, client.connections

        assert run(twice, url) == (200, 200, 2)
    assert len(accepted) == 2


def test_a_new_connection_closed_without_an_answer_is_not_retried() -> None:
    def handle(conn: socket.socket, n: int) -> None:
        read_request(conn)

    with (
        raw_server(handle) as (url, accepted),
        pytest.raises(TransportError, match="closed the connection") as err,
    ):
        run(lambda c: c.post_events(b"{}", gzipped=False), url)
    assert len(accepted) == 1
    assert_no_key(err.value)


# -- broken and hostile answers ------------------------------------------------------------


def test_a_response_cut_mid_body_is_a_transport_error() -> None:
    def handle(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"{" * 100)

    with raw_server(handle) as (url, _), pytest.raises(TransportError, match="mid-response") as err:
        run(lambda c: c.post_events(b"{}", gzipped=False), url)
    assert_no_key(err.value)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_past_the_limit_is_refused(framing: str) -> None:
    block = b"x" * 65536

    def handle(conn: socket.socket, n: int) -> None:
        read_request(conn)
        if framing == "content-length":
            conn.sendall(
                f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_RESPONSE_BYTES + 1}\r\n\r\n".encode()
            )
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(2 * MAX_RESPONSE_BYTES // len(block)):  # twice the limit, then stop
            conn.sendall(b"%x\r\n%s\r\n" % (len(block), block))

    with (
        raw_server(handle) as (url, _),
        pytest.raises(TransportError, match=f"larger than {MAX_RESPONSE_BYTES}"),
    ):
        run(lambda c: c.get("/api/v1/events"), url)


def test_a_server_that_never_answers_times_out_and_the_client_recovers() -> None:
    answered = threading.Event()

    def handle(conn: socket.socket, n: int) -> None:
        read_request(conn)
        if n == 0:  # hold the request unanswered until the client gave up on it
            conn.recv(1)  # returns at the client's close (or WAIT_S)
            return
        conn.sendall(OK)
        answered.set()

    with raw_server(handle) as (url, accepted):

        async def slow_then_fine(client: ApiClient) -> tuple[str, int]:
            with pytest.raises(TransportError) as err:
                await client.post_events(b"{}", gzipped=False)
            reply = await client.post_events(b"{}", gzipped=False)
            return err.value.description, reply.status

        description, status = run(slow_then_fine, url, timeout_s=0.5)
    assert description == "timed out" and status == 200 and answered.is_set()
    assert len(accepted) == 2


def test_redirects_are_not_followed_and_the_key_stays_home() -> None:
    elsewhere: list[str] = []

    with raw_server(lambda conn, n: elsewhere.append(read_request(conn).decode())) as (other, _):

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(other + "/api/v1/events")

        app = web.Application()
        app.router.add_post("/api/v1/events", moved)
        server = ServerThread()
        try:
            url = server.start(app)
            reply = run(lambda c: c.post_events(b"{}", gzipped=False), url)
        finally:
            server.close()
    assert reply.status == 307 and reply.headers["location"] == other + "/api/v1/events"
    assert elsewhere == []


def test_an_answer_that_echoes_the_key_does_not_carry_it_into_the_error() -> None:
    def handle(conn: socket.socket, n: int) -> None:
        head = read_request(conn)
        auth = next(x for x in head.split(b"\r\n") if x.lower().startswith(b"authorization"))
        conn.sendall(b"HTTP/1.1 2x0 " + auth + b"\r\n\r\n")  # not a status line

    with (
        raw_server(handle) as (url, _),
        pytest.raises(TransportError, match="bad HTTP response") as err,
    ):
        run(lambda c: c.check_key(), url)
    assert_no_key(err.value)


def test_refused_connection_and_repr_name_no_key() -> None:
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    client = ApiClient(f"http://127.0.0.1:{port}", Secret(KEY))
    assert KEY not in repr(client)
    with pytest.raises(TransportError, match=f"cannot connect to 127.0.0.1:{port}: ") as err:
        run(lambda c: c.check_key(), f"http://127.0.0.1:{port}")
    assert "Connection refused" in str(err.value)
    assert_no_key(err.value)


def test_plain_http_builds_no_tls_context() -> None:
    assert ApiClient("http://127.0.0.1:1", Secret(KEY))._tls is None
    assert ApiClient("https://127.0.0.1:1", Secret(KEY))._tls is not None


def test_origins() -> None:
    origin = parse_origin("https://API.example.com/base/")
    assert (origin.host, origin.port, origin.authority) == ("api.example.com", 443, origin.host)
    assert origin.target("/api/v1/events?x=1") == b"/base/api/v1/events?x=1"
    assert parse_origin("http://[::1]:8080").authority == "[::1]:8080"
    for bad in ("ftp://example.com", "http://", "http://host:port"):
        with pytest.raises(ValueError):
            parse_origin(bad)
