"""What is in the spool, for `km status`: read-only, so it never blocks writers or creates files.

`read_status(path)` returns plain JSON-serialisable data (ints, strings, lists, dicts, None).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from typing import Any
from urllib.parse import quote

import orjson

from km.events import IN_FLIGHT, PENDING, QUARANTINED, STATE_NAMES
from km.spool.errors import SpoolTooNew, classify_sqlite
from km.spool.schema import SCHEMA_VERSION, schema_version
from km.spool.store import check_spool_files

READ_BUSY_TIMEOUT_MS = 2000  # a reader waits only for a WAL recovery, which is short
MAX_SESSIONS = 50  # most recent sessions listed (all are counted)
MAX_REASONS = 20  # distinct quarantine reasons listed (all are counted)

Status = dict[str, Any]


def read_status(path: str, max_sessions: int = MAX_SESSIONS) -> Status:
    """Summarise the spool at `path`. A missing file gives `{"exists": False, ...}`; a damaged
    one raises `SpoolCorrupt`; other failures raise the matching `SpoolError`."""
    path = os.path.abspath(path)
    status: Status = {"path": path, "exists": os.path.exists(path)}
    if not status["exists"]:
        return status
    check_spool_files(path)  # a planted link or another user's file is refused, not read
    status.update(_file_sizes(path))
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise classify_sqlite(path, exc) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS:d}")
        conn.execute("BEGIN")  # one consistent snapshot for every query below
        status.update(_read(conn, path, max_sessions))
    except sqlite3.Error as exc:
        raise classify_sqlite(path, exc) from exc
    finally:
        conn.close()
    return status


def is_process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_only_uri(path: str) -> str:
    return f"file:{quote(path)}?mode=ro"


def _file_sizes(path: str) -> Status:
    def size(name: str) -> int:
        try:
            return os.stat(name).st_size
        except OSError:
            return 0

    db, wal = size(path), size(path + "-wal")
    return {"db_bytes": db, "wal_bytes": wal, "file_bytes": db + wal}


def _read(conn: sqlite3.Connection, path: str, max_sessions: int) -> Status:
    version = schema_version(conn)
    status: Status = {"schema_version": version, "known_schema_version": SCHEMA_VERSION}
    if version == 0:  # created, never migrated (or an empty file): nothing stored yet
        status.update(_empty())
        return status
    if version > SCHEMA_VERSION:
        raise SpoolTooNew(path, version, SCHEMA_VERSION)
    one = conn.execute
    pragmas = ("page_count", "freelist_count", "page_size")
    pages, free, page_size = (one(f"PRAGMA {name}").fetchone()[0] for name in pragmas)
    by_state = {name: 0 for name in STATE_NAMES.values()}
    for state, count in one("SELECT state, count(*) FROM events GROUP BY state"):
        by_state[STATE_NAMES.get(state, f"state_{state}")] = count
    by_server = dict(one("SELECT server, count(*) FROM events GROUP BY server ORDER BY server"))
    stats = dict(one("SELECT key, value FROM spool_stats"))
    dropped_frames, dropped_bytes, sessions_total, last_capture = one(
        "SELECT coalesce(sum(dropped_frames), 0), coalesce(sum(dropped_bytes), 0), count(*),"
        " max(last_capture_ns) FROM sessions"
    ).fetchone()
    live = _live_session_ids(conn)
    sessions = _sessions(conn, max_sessions, live)
    status.update(
        {
            "used_bytes": (pages - free) * page_size,
            "events_total": sum(by_state.values()),
            "events_by_state": by_state,
            "events_by_server": by_server,
            "sessions_total": sessions_total,
            "sessions": sessions,
            "live": _live(conn, live),
            "dropped": {"frames": dropped_frames, "bytes": dropped_bytes},
            "expired": {  # delivered events deleted by the age cap (KM_SPOOL_MAX_AGE)
                "events": stats.get("expired_events", 0),
                "bytes": stats.get("expired_bytes", 0),
            },
            "evicted": {
                "events": stats.get("evicted_events", 0),
                "bytes": stats.get("evicted_bytes", 0),
            },
            "last_capture_ns": last_capture,
            "delivery": _delivery(conn, by_state),
        }
    )
    return status


def _delivery(conn: sqlite3.Connection, by_state: dict[str, int]) -> Status:
    """The uplink's side: what waits, what is out, what the server refused and why, and the
    shared uplink state (breaker, pause, last success, last error)."""
    now = time.time_ns()
    (expired,) = conn.execute(
        "SELECT count(*) FROM events WHERE state = ? AND lease_until_ns <= ?", (IN_FLIGHT, now)
    ).fetchone()
    retried, oldest = conn.execute(
        "SELECT coalesce(sum(attempts > 0), 0), min(ts_ns) FROM events WHERE state = ?",
        (PENDING,),
    ).fetchone()
    reasons = [
        {"reason": reason or "(no reason given)", "events": count}
        for reason, count in conn.execute(
            "SELECT last_error, count(*) AS n FROM events WHERE state = ?"
            " GROUP BY last_error ORDER BY n DESC, last_error LIMIT ?",
            (QUARANTINED, MAX_REASONS),
        )
    ]
    delivery = _empty_delivery()
    delivery.update(
        pending=by_state.get("pending", 0),
        in_flight=by_state.get("in_flight", 0),
        in_flight_expired=expired,  # leases of an uplink that died: delivered again soon
        sent=by_state.get("sent", 0),
        quarantined=by_state.get("quarantined", 0),
        quarantine_reasons=reasons,
        pending_retried=retried,  # pending events that failed at least once
        oldest_pending_ts_ns=oldest,
    )
    has_state = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'uplink_state'"
    ).fetchone()
    if not has_state:  # a spool no uplink has touched since it was created by an older km
        return delivery
    state = {
        key: (value, number, at)
        for key, value, number, at in conn.execute(
            "SELECT key, value, number, at_ns FROM uplink_state"
        )
    }
    if "breaker" in state:
        value, number, at = state["breaker"]
        delivery.update(breaker=value, breaker_until_ns=number, breaker_since_ns=at)
    if "paused" in state:
        value, number, at = state["paused"]
        delivery.update(paused_reason=value, paused_status=number, paused_since_ns=at)
    if "last_success" in state:
        value, number, at = state["last_success"]
        delivery.update(last_success_ns=at, last_success_url=value, last_success_events=number)
    if "last_error" in state:
        value, _, at = state["last_error"]
        delivery.update(last_error=value, last_error_ns=at)
    return delivery


def _live_session_ids(conn: sqlite3.Connection) -> set[str]:
    """Sessions not recorded as ended whose km process still runs on this host."""
    host = socket.gethostname()
    rows = conn.execute(
        "SELECT session_id, pid FROM sessions WHERE ended_ns IS NULL AND host = ?", (host,)
    )
    return {sid for sid, pid in rows if pid is not None and is_process_alive(pid)}


def _live(conn: sqlite3.Connection, live: set[str]) -> list[Status]:
    """The live km processes, oldest first."""
    rows = conn.execute(
        "SELECT session_id, server, pid, started_ns, last_capture_ns FROM sessions"
        " WHERE ended_ns IS NULL ORDER BY started_ns"
    )
    keys = ("session_id", "server", "pid", "started_ns", "last_capture_ns")
    return [dict(zip(keys, row, strict=True)) for row in rows if row[0] in live]


def _sessions(conn: sqlite3.Connection, limit: int, live: set[str]) -> list[Status]:
    rows = conn.execute(
        "SELECT session_id, server, command, pid, host, started_ns, ended_ns, exit_code,"
        " km_version, dropped_frames, dropped_bytes, last_capture_ns, last_error"
        " FROM sessions ORDER BY started_ns DESC, session_id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    sessions: list[Status] = []
    for row in rows:
        (sid, server, command, pid, s_host, started, ended, exit_code, version,
         d_frames, d_bytes, last_capture, last_error) = row  # fmt: skip
        (events,) = conn.execute(
            "SELECT count(*) FROM events WHERE session_id = ?", (sid,)
        ).fetchone()
        sessions.append(
            {
                "session_id": sid,
                "server": server,
                "command": _command(command),
                "pid": pid,
                "host": s_host,
                "started_ns": started,
                "ended_ns": ended,
                "exit_code": exit_code,
                "km_version": version,
                "events": events,
                "dropped": {"frames": d_frames, "bytes": d_bytes},
                "last_capture_ns": last_capture,
                "last_error": last_error,
                "live": sid in live,
            }
        )
    return sessions


def _command(text: str) -> list[str] | str:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return [str(part) for part in value] if isinstance(value, list) else text


def _empty() -> Status:
    return {
        "used_bytes": 0,
        "events_total": 0,
        "events_by_state": {name: 0 for name in STATE_NAMES.values()},
        "events_by_server": {},
        "sessions_total": 0,
        "sessions": [],
        "live": [],
        "dropped": {"frames": 0, "bytes": 0},
        "evicted": {"events": 0, "bytes": 0},
        "expired": {"events": 0, "bytes": 0},
        "last_capture_ns": None,
        "delivery": _empty_delivery(),
    }


def _empty_delivery() -> Status:
    return {
        "pending": 0,
        "in_flight": 0,
        "in_flight_expired": 0,
        "sent": 0,
        "quarantined": 0,
        "quarantine_reasons": [],
        "pending_retried": 0,
        "oldest_pending_ts_ns": None,
        "breaker": None,
        "breaker_until_ns": None,
        "breaker_since_ns": None,
        "paused_reason": None,
        "paused_status": None,
        "paused_since_ns": None,
        "last_success_ns": None,
        "last_success_url": None,
        "last_success_events": None,
        "last_error": None,
        "last_error_ns": None,
    }
