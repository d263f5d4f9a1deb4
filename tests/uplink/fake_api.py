"""A small, real HTTP implementation of docs/api.md's ingest contract, for uplink tests.

`FakeApi` is an aiohttp application: `POST /api/v1/events` (gzip, limits, per-event
validation, idempotent by id) and `GET /api/v1/sessions` (to check a key). Tests switch its
failure modes while it runs: answer the next requests with a status (503, 500, 429 with a
`Retry-After`), reject chosen ids per event, refuse whole batches holding chosen ids (400,
without per-event details), forget to acknowledge ids, hold responses until released.

`ServerThread` serves any aiohttp application (this one, or the real `km serve` app) on
127.0.0.1 from a thread with its own event loop, so tests can be plain functions, drive
uplinks in other threads and processes, and wait on the server with timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import socket
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web

T = TypeVar("T")

GOOD_KEY = "km_live_" + "G" * 32
OTHER_GOOD_KEY = "km_live_" + "H" * 32
REVOKED_KEY = "km_live_" + "R" * 32
DIRECTIONS = ("c2s", "s2c", "km")
KINDS = ("request", "notification", "response", "error", "batch", "invalid", "dropped")
REQUIRED = (
    "id",
    "session_id",
    "server",
    "direction",
    "ts_ns",
    "kind",
    "size",
    "payload",
    "payload_encoding",
)
SERVE_TIMEOUT_S = 10.0  # starting or stopping a server thread


@dataclass
class Request:
    """One request as the fake saw it."""

    arrived: float  # time.monotonic() at arrival
    status: int = 0
    answered: float = 0.0  # time.monotonic() when the answer was ready
    events: int = 0
    gzipped: bool = False
    retry_after: float | None = None


@dataclass
class FakeApi:
    keys: set[str] = field(default_factory=lambda: {GOOD_KEY})
    revoked: set[str] = field(default_factory=lambda: {REVOKED_KEY})
    max_events: int = 5000
    max_bytes: int = 8 * 1024 * 1024
    # Stored events (id -> the event as received, payload decoded to bytes under "_bytes").
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)  # id -> times it arrived
    accepted: Counter[str] = field(default_factory=Counter)  # id -> times stored as new
    duplicates: Counter[str] = field(default_factory=Counter)
    requests: list[Request] = field(default_factory=list)
    # Failure modes, switchable while serving.
    fail_next: list[tuple[int, float | None]] = field(default_factory=list)  # (status, retry)
    fail_all: int | None = None  # every ingest request gets this status while set
    fail_all_retry_after: float | None = None
    reject_ids: dict[str, str] = field(default_factory=dict)  # id -> reason (200, per event)
    poison_ids: set[str] = field(default_factory=set)  # whole batch 400 while one is in it
    forget_ids: Counter[str] = field(default_factory=Counter)  # id -> times to not acknowledge
    delay_s: float = 0.0  # a slow API: every ingest answer takes this long
    echo_auth: int | None = None  # answer this status with the Authorization header echoed
    hold: threading.Event | None = None  # after storing, answer only once this is set
    stored_batch: threading.Event = field(default_factory=threading.Event)  # set per store
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/events", self._post_events)
        app.router.add_get("/api/v1/sessions", self._get_sessions)
        return app

    # -- what the tests look at --------------------------------------------------------------

    def store_counts(self) -> dict[str, int]:
        with self.lock:
            return {i: self.accepted[i] for i in self.stored}

    def ingest_requests(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    # -- handlers ----------------------------------------------------------------------------

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            return _error(401, "missing API key")
        if key in self.revoked:
            return _error(403, f"API key {key[:12]}... was revoked")
        if key not in self.keys:
            return _error(401, "unknown API key")
        return None

    async def _get_sessions(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        return web.json_response({"sessions": [], "next_cursor": None})

    async def _post_events(self, request: web.Request) -> web.Response:
        log = Request(arrived=time.monotonic())
        with self.lock:
            self.requests.append(log)
        response = await self._ingest(request, log)
        log.status = response.status
        log.answered = time.monotonic()
        return response

    async def _ingest(self, request: web.Request, log: Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        if self.echo_auth is not None:  # a careless server that repeats the key back
            echoed = request.headers.get("Authorization", "")
            return _error(self.echo_auth, f"cannot take {echoed} here")
        with self.lock:
            forced = self.fail_next.pop(0) if self.fail_next else None
            if forced is None and self.fail_all is not None:
                forced = (self.fail_all, self.fail_all_retry_after)
        if forced is not None:
            status, retry_after = forced
            log.retry_after = retry_after
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            return _error(status, f"forced {status}", headers)
        raw = await request.read()
        log.gzipped = request.headers.get("Content-Encoding", "").lower() == "gzip"
        try:
            body = gzip.decompress(raw) if log.gzipped else raw
        except (OSError, EOFError, zlib.error):
            return _error(400, "the body is not valid gzip")
        if len(body) > self.max_bytes:
            return _error(413, f"the body is larger than {self.max_bytes} bytes")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "the body is not JSON")
        events = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(events, list):
            return _error(400, 'the body has no "events" array')
        if len(events) > self.max_events:
            return _error(413, f"more than {self.max_events} events")
        log.events = len(events)
        ids = [e.get("id") for e in events if isinstance(e, dict)]
        with self.lock:
            for i in ids:
                if isinstance(i, str):
                    self.received[i] += 1
            if any(i in self.poison_ids for i in ids):
                return _error(400, "the batch holds an event this server cannot read")
        accepted: list[str] = []
        duplicates: list[str] = []
        rejected: list[dict[str, Any]] = []
        with self.lock:
            for index, event in enumerate(events):
                reason = _validate(event)
                event_id = event.get("id") if isinstance(event, dict) else None
                if reason is None and event_id in self.reject_ids:
                    reason = self.reject_ids[event_id]
                if reason is not None:
                    rejected.append({"id": event_id, "index": index, "reason": reason})
                    continue
                assert isinstance(event_id, str)
                if event_id in self.stored:
                    self.duplicates[event_id] += 1
                    listed = duplicates
                else:
                    self.stored[event_id] = dict(event, _bytes=_payload_bytes(event))
                    self.accepted[event_id] += 1
                    listed = accepted
                if self.forget_ids[event_id] > 0:
                    self.forget_ids[event_id] -= 1
                    continue
                listed.append(event_id)
        self.stored_batch.set()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        hold = self.hold
        if hold is not None:
            await asyncio.to_thread(hold.wait, SERVE_TIMEOUT_S * 3)
        return web.json_response(
            {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
        )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _validate(event: object) -> str | None:
    if not isinstance(event, dict):
        return "event: expected a JSON object"
    for name in REQUIRED:
        if event.get(name) is None:
            return f"{name}: required"
    try:
        if str(uuid.UUID(event["id"])) != event["id"].lower():
            return "id: expected a UUID"
    except (ValueError, AttributeError, TypeError):
        return "id: expected a UUID"
    if event["direction"] not in DIRECTIONS:
        return "direction: unknown"
    if event["kind"] not in KINDS:
        return "kind: unknown"
    if event["payload_encoding"] not in ("utf8", "base64"):
        return "payload_encoding: unknown"
    try:
        _payload_bytes(event)
    except (ValueError, binascii.Error):
        return "payload: not valid base64"
    return None


def _payload_bytes(event: dict[str, Any]) -> bytes:
    payload = event["payload"]
    if event["payload_encoding"] == "utf8":
        return str(payload).encode("utf-8")
    return base64.b64decode(str(payload).encode("ascii"), validate=True)


# -- serving from a thread -----------------------------------------------------------------------


class ServerThread:
    """An aiohttp application served on 127.0.0.1 from a thread with its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def start(self, app: web.Application, port: int = 0, **runner_options: Any) -> str:
        async def go() -> int:
            runner = web.AppRunner(app, **runner_options)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
            await site.start()
            self._runner = runner
            bound: int = runner.addresses[0][1]
            return bound

        self.port = self.call(go, SERVE_TIMEOUT_S)
        return self.url

    def stop_serving(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            self.call(runner.cleanup, SERVE_TIMEOUT_S)

    def close(self, cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        try:
            self.stop_serving()
            if cleanup is not None:

                async def run_cleanup() -> None:
                    await cleanup()

                self.call(run_cleanup, SERVE_TIMEOUT_S)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(SERVE_TIMEOUT_S)
            self.loop.close()


@contextmanager
def serving(api: FakeApi, port: int = 0) -> Iterator[ServerThread]:
    server = ServerThread()
    try:
        server.start(api.app(), port, auto_decompress=False)
        yield server
    finally:
        server.close()


def free_port() -> int:
    """A port nothing listens on now (for an API that is down, then comes up on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
