"""The live OTLP uplink (KM_OTLP_ENDPOINT) with real km sessions through mcp-server-time: spans
reach a real decoding receiver as the session runs; with the endpoint down the session is
unaffected, the spool and its own cursor keep everything, and a later sender delivers it."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from km.export.live import NAME, LiveSender, OtlpHandle, _lock, start_otlp_uplink
from tests.export.captures import km_env, time_session
from tests.export.otlp_receiver import Received, receiver

WAIT_S = 60.0


def names(got: Received) -> list[str]:
    return [span.name for _, span in got.spans()]


def cursor(spool: str) -> tuple[Any, ...] | None:
    conn = sqlite3.connect(spool)
    try:
        row = conn.execute(
            "SELECT seq, sent, attempts, last_error FROM export_cursors WHERE name = ?", [NAME]
        ).fetchone()
        return None if row is None else tuple(row)
    finally:
        conn.close()


def spanning_seqs_upto(spool: str, seq: int) -> int:
    """Events at or before `seq` that would have made a span (replies and notifications)."""
    conn = sqlite3.connect(spool)
    try:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE seq <= ?"
            " AND kind IN ('response', 'error', 'notification')",
            [seq],
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def test_a_session_reaches_the_endpoint_live(tmp_path: Path) -> None:
    env = km_env(tmp_path)
    with receiver() as (url, got):
        env["KM_OTLP_ENDPOINT"] = url
        replies = time_session(env)
        deadline = time.monotonic() + WAIT_S
        while "tools/call convert_time" not in names(got):
            assert time.monotonic() < deadline, names(got)
            time.sleep(0.1)
    assert len(replies) == 5  # the session itself went as usual
    sent = names(got)
    assert {"initialize", "tools/list", "tools/call get_current_time",
            "notifications/initialized"} <= set(sent)  # fmt: skip
    assert sent.count("tools/call get_current_time") == 2 and not got.problems
    state = cursor(env["KM_SPOOL"])
    assert state is not None and state[1] == len(sent) and state[2] == 0 and state[3] is None


def test_an_endpoint_that_is_down_loses_nothing(tmp_path: Path) -> None:
    env = km_env(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env["KM_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    replies = time_session(env)
    assert len(replies) == 5 and replies[0]["result"]["serverInfo"]["name"] == "mcp-time"
    spool = env["KM_SPOOL"]
    deadline = time.monotonic() + WAIT_S
    while (state := cursor(spool)) is None or state[2] < 1:  # the sender's first failed try
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    # Nothing was sent, and the cursor passed no event that makes a span: a request whose reply
    # had not been captured yet may be passed (its reply's span looks it up by link later).
    assert state[1] == 0
    assert spanning_seqs_upto(spool, state[0]) == 0
    assert state[2] >= 1 and f"127.0.0.1:{port}" in state[3]
    # The endpoint is back: the same delivery state sends the whole session.
    with receiver() as (url, got):
        sender = LiveSender(spool, url)
        try:
            while sender.step():
                pass
        finally:
            sender.close()
    assert names(got).count("tools/call get_current_time") == 2
    state = cursor(spool)
    assert state is not None and state[0] > 0 and state[2] == 0 and state[3] is None


def test_a_garbage_answer_keeps_the_cursor(tmp_path: Path) -> None:
    env = km_env(tmp_path)
    time_session(env)
    spool = env["KM_SPOOL"]
    with receiver("garbage") as (url, _):
        sender = LiveSender(spool, url, started_ns=time.time_ns() + 3600 * 10**9)
        try:
            assert sender.cursor() > 0  # a first start begins near the end: not this session
        finally:
            sender.close()
    conn = sqlite3.connect(spool)
    conn.execute("UPDATE export_cursors SET seq = 0")  # as if it had started before the session
    conn.commit()
    conn.close()
    with receiver("garbage") as (url, _):
        sender = LiveSender(spool, url)
        try:
            assert sender.step() is None
        finally:
            sender.close()
    state = cursor(spool)
    assert state is not None and state[0] == 0 and state[2] == 1 and "400" in state[3]


def test_a_session_shorter_than_the_senders_start_still_gets_its_last_pass(
    tmp_path: Path,
) -> None:
    """Stopped before its thread tried the lock even once (a short session on a busy machine),
    the sender still takes it and makes its last pass: the endpoint's failure is on record."""
    env = km_env(tmp_path)
    time_session(env)  # the events, captured without a live endpoint
    spool = env["KM_SPOOL"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handle = OtlpHandle()
    handle.stopping.set()  # as if the session ended before the thread ran
    fd = _lock(handle, spool)
    assert fd is not None  # one try, even when stopped
    try:
        other = OtlpHandle()
        other.stopping.set()
        assert _lock(other, spool) is None  # held: a stopped sender gives up at once
    finally:
        os.close(fd)
    started = start_otlp_uplink(f"http://127.0.0.1:{port}", spool)
    assert started.stop(timeout=30.0)
    state = cursor(spool)
    assert state is not None and state[1] == 0 and state[2] >= 1, state
    assert f"127.0.0.1:{port}" in state[3]


def test_a_sender_that_starts_before_the_spool_exists_waits_for_it(tmp_path: Path) -> None:
    """The sender's thread can run before the spool writer made the spool: it never creates
    the file (the writer makes it private), and sends the session once the spool is there."""
    env = km_env(tmp_path)
    spool = env["KM_SPOOL"]
    with receiver() as (url, got):
        sender = LiveSender(spool, url)
        try:
            assert sender.step() == 0 and not os.path.lexists(spool)
            time_session(env)
            while sender.step():
                pass
        finally:
            sender.close()
    assert names(got).count("tools/call get_current_time") == 2 and not got.problems


def test_a_sender_that_starts_before_the_spools_tables_makes_them(tmp_path: Path) -> None:
    """The spool's file can exist before the writer made its tables (it creates the file, then
    migrates): the sender migrates it as the writer would, and its cursor is on record."""
    spool = str(tmp_path / "spool.db")
    os.close(os.open(spool, os.O_RDWR | os.O_CREAT, 0o600))
    with receiver() as (url, got):
        sender = LiveSender(spool, url)
        try:
            assert sender.step() == 0
        finally:
            sender.close()
    assert cursor(spool) == (0, 0, 0, None) and not got.spans()
