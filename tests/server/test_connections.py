"""`km serve` cannot be locked out by connections that never finish a request: a real server
under a 1,024 open-file limit serves a real request while 1,100 connections hold half-sent
headers; slow and idle connections are closed; bad keys are rate limited per address."""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import pytest

from tests.server.conftest import Api, event_json
from tests.server.serve_process import KmServe, create_key

OPEN_FILES = 1024  # `ulimit -n 1024` for the server process
SLOW_CONNECTIONS = 1_100
CONNECT_TIMEOUT_S = 10.0
CLOSE_WAIT_S = 15.0  # bound on waiting for the server to close a connection
HALF_HEADERS = b"GET /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _ulimit_1024() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def _open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _slow_connection(port: int) -> socket.socket | None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S)
    except OSError:
        return None  # the listen queue is full for a moment: the attack goes on regardless
    try:
        sock.sendall(HALF_HEADERS)
    except OSError:
        pass  # already evicted
    return sock


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True once the server closes `sock` (EOF or reset), False if `within_s` passes first."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts fds through /proc")
def test_a_request_is_served_while_1100_slow_header_connections_are_open(
    tmp_path: Path,
) -> None:
    db = f"sqlite://{tmp_path / 'server.db'}"
    key = create_key(db)
    # The header timeout is longer than the test: only the connection cap can save it.
    with KmServe(db, "--header-timeout", "300", preexec_fn=_ulimit_1024) as server:
        slow: list[socket.socket] = []
        try:
            for _ in range(SLOW_CONNECTIONS):
                sock = _slow_connection(server.port)
                if sock is not None:
                    slow.append(sock)
            assert len(slow) > OPEN_FILES
            status, body, _ = server.get("/api/v1/sessions", key)
            assert (status, body) == (200, {"sessions": [], "next_cursor": None})
            assert server.get("/ready")[0] == 200
            assert _open_fds(server.pid) < OPEN_FILES
            assert "at most 960 connections (open-file limit 1024)" in server.stderr_so_far()
        finally:
            for sock in slow:
                sock.close()
        assert server.stop() == 0
    assert "Traceback" not in server.stderr_so_far()


def test_slow_headers_and_idle_connections_are_closed(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'server.db'}"
    with KmServe(db, "--header-timeout", "1", "--idle-timeout", "2") as server:
        # Headers that never end.
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=CONNECT_TIMEOUT_S)
        half = _slow_connection(server.port)
        assert half is not None
        # Headers sent one byte at a time, never finishing: closed all the same.
        trickle = socket.create_connection(("127.0.0.1", server.port), timeout=CONNECT_TIMEOUT_S)
        deadline = time.monotonic() + CLOSE_WAIT_S
        closed = False
        for byte in HALF_HEADERS * 100:
            if time.monotonic() > deadline:
                break
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            trickle.settimeout(0.2)
            try:
                if trickle.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
        assert closed, "a trickle of header bytes kept the connection open"
        # A kept-alive connection after a complete request and response.
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=CONNECT_TIMEOUT_S)
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        for sock in (silent, half, idle):
            assert _closed_by_server(sock, CLOSE_WAIT_S)
            sock.close()
        trickle.close()


@pytest.mark.asyncio
async def test_unknown_keys_are_rate_limited_per_address(api: Api) -> None:
    good = await api.new_key("acme")
    statuses = []
    for i in range(40):
        status, _, resp = await api.post_events(f"km_live_guess{i:027d}", [event_json()])
        statuses.append(status)
        if status == 429:
            assert int(resp.headers["Retry-After"]) >= 1
            break
    assert statuses == [401] * 30 + [429]
    # The address, not the key, is limited: a good key from there waits its turn too.
    status, body, _ = await api.get("/api/v1/sessions", good)
    assert status == 429 and "bad API key from this address" in body["error"]
