"""Helpers for uplink tests: spools full of events, settings, and the delivery checker.

`check(spool, stored)` classifies every spooled event from the server's side: delivered (stored
exactly once), duplicated (stored more than once), lost (not stored and not quarantined), or
quarantined (not stored, QUARANTINED in the spool with a reason). Payload bytes are compared
too when the server's copies are given.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

import km
from km.capture.ids import uuid7
from km.events import C2S, QUARANTINED, REQUEST, S2C, SENT, STATE_NAMES, Event, SessionInfo
from km.settings import Settings
from km.spool.store import SpoolStore
from km.uplink.backoff import BackoffPolicy
from km.uplink.run import DrainResult, Uplink, UplinkConfig

SESSION = "0190aaaa-0000-7000-8000-000000000001"
# Now (whole seconds): km serve enforces retention from start-up, and an event a year old would
# be past any account's retention by the time a test restarts the server.
BASE_TS = time.time_ns() // 10**9 * 10**9

# Fast retries so tests finish quickly; the same code paths as the defaults.
FAST = UplinkConfig(
    max_events=100,
    max_bytes=256 * 1024,
    lease_s=30.0,
    request_timeout_s=5.0,
    idle_s=0.05,
    start_delay_s=0.0,
    backoff=BackoffPolicy(base_s=0.02, cap_s=0.2),
    breaker_failures=3,
    breaker_open_s=0.2,
    breaker_max_open_s=0.5,
    pause_check_s=0.05,
    pause_retry_s=600.0,
    sync_max_failures=200,
    sync_max_wait_s=10.0,
)


def payload_for(n: int) -> bytes:
    """Varied payloads: JSON-RPC text, non-ASCII text, and bytes that are not UTF-8."""
    if n % 7 == 3:
        return b"\xff\xfe not utf-8 \x80" + bytes([n % 256])
    if n % 11 == 5:
        return (
            f'{{"jsonrpc":"2.0","id":{n},"result":{{"text":"h\u00e9llo \u2713 \U0001f600"}}}}'
        ).encode()
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"x"}}' % n


def make_events(
    n: int,
    *,
    session_id: str = SESSION,
    server: str = "srv",
    payload: Callable[[int], bytes] = payload_for,
    start: int = 0,
) -> list[Event]:
    events = []
    for i in range(start, start + n):
        body = payload(i)
        events.append(
            Event(
                id=uuid7(),
                session_id=session_id,
                server=server,
                direction=C2S if i % 2 == 0 else S2C,
                ts_ns=BASE_TS + i * 1000,
                mono_ns=1000 + i,
                kind=REQUEST,
                method="tools/call",
                rpc_id=str(i),
                size=len(body),
                payload=body,
                truncated=i % 13 == 0,
                latency_us=i if i % 2 else None,
            )
        )
    return events


def fill_spool(path: Path | str, events: list[Event], session_id: str = SESSION) -> list[str]:
    """Write `events` (and their session) to the spool at `path`; their ids in order."""
    store = SpoolStore.open(str(path), 1 << 40)
    try:
        store.begin_session(
            SessionInfo(
                session_id=session_id,
                server="srv",
                command=("srv",),
                pid=1,
                host=socket.gethostname(),
                started_ns=time.time_ns(),
                km_version=km.__version__,
            )
        )
        for start in range(0, len(events), 5000):
            store.append(events[start : start + 5000])
    finally:
        store.close()
    return [e.id for e in events]


def make_settings(
    tmp_path: Path, url: str | None = None, key: str | None = None, *, config: bool = True
) -> Settings:
    """Settings as the CLI would build them; the config file lives in `tmp_path`."""
    settings = Settings()
    if config:
        settings.set("config_path", str(tmp_path / "config" / "config.toml"), "test")
    if url is not None:
        settings.set("api_url", url, "test")
    if key is not None:
        settings.set("api_key", key, "test")
    return settings


@dataclass
class Ledger:
    delivered: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # id -> reason
    unsettled: dict[str, str] = field(default_factory=dict)  # delivered, spool not SENT
    mismatched: list[str] = field(default_factory=list)  # stored payload differs

    def assert_clean(self, quarantined: Mapping[str, str] | None = None) -> None:
        """Nothing lost or duplicated; exactly the expected quarantine, reasons included."""
        assert self.lost == [], f"{len(self.lost)} lost, e.g. {self.lost[:3]}"
        assert self.duplicated == [], f"{len(self.duplicated)} duplicated"
        assert self.mismatched == [], f"{len(self.mismatched)} payloads differ"
        assert self.unsettled == {}, f"{len(self.unsettled)} delivered but not marked sent"
        expected = dict(quarantined or {})
        assert set(self.quarantined) == set(expected)
        for event_id, reason in expected.items():
            assert reason in self.quarantined[event_id]


def spool_rows(path: Path | str) -> list[tuple[str, int, str | None, bytes, int]]:
    """(id, state, last_error, payload, attempts) for every event, by seq."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT id, state, last_error, payload, attempts FROM events ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


def states(path: Path | str) -> dict[str, int]:
    counts = {name: 0 for name in STATE_NAMES.values()}
    for _, state, _, _, _ in spool_rows(path):
        counts[STATE_NAMES[state]] += 1
    return counts


def same_payload(spooled: bytes, stored: bytes | None, json_equal: bool) -> bool:
    """Byte for byte; with `json_equal`, JSON payloads may come back re-serialized (PostgreSQL
    JSONB: whitespace and key order differ) and need only be equal as JSON."""
    if stored == spooled:
        return True
    if not json_equal or stored is None:
        return False
    try:
        return bool(orjson.loads(stored) == orjson.loads(spooled))
    except orjson.JSONDecodeError:
        return False


def check(
    path: Path | str,
    stored: Mapping[str, int],
    payloads: Mapping[str, bytes] | None = None,
    *,
    json_equal: bool = False,
) -> Ledger:
    """Classify every spooled event against the server's `stored` counts (id -> copies);
    `json_equal` for a store that re-serializes JSON payloads (see `same_payload`)."""
    ledger = Ledger()
    for event_id, state, last_error, payload, _ in spool_rows(path):
        copies = stored.get(event_id, 0)
        if copies == 1:
            ledger.delivered += 1
            if state != SENT:
                ledger.unsettled[event_id] = STATE_NAMES[state]
            if payloads is not None and not same_payload(
                payload, payloads.get(event_id), json_equal
            ):
                ledger.mismatched.append(event_id)
        elif copies > 1:
            ledger.duplicated.append(event_id)
        elif state == QUARANTINED:
            ledger.quarantined[event_id] = last_error or ""
        else:
            ledger.lost.append(event_id)
    return ledger


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` (cheap reads only) until true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Drain:
    """`Uplink.run_until_drained` on a thread of its own (its own event loop)."""

    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink
        self.result: DrainResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = asyncio.run(self.uplink.run_until_drained())
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float) -> DrainResult:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the drain did not end within {timeout} s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def drain(settings: Settings, spool: Path | str, config: UplinkConfig = FAST) -> DrainResult:
    return asyncio.run(Uplink(settings, str(spool), config).run_until_drained())
