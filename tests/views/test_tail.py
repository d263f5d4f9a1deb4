"""`km tail` following a spool: new events as they are written (in process, polls stepped by
the test), the evicted and skipped notices, and a real MCP session through km followed by a
real `km tail` process."""

from __future__ import annotations

import io
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from km.views import tail as tail_module
from km.views.spool_read import SpoolReader
from km.views.tail import Output, TailOptions, follow
from tests.views.spool_data import Builder

TIME_SERVER = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]


class Done(Exception):
    pass


def stepped(*steps: object) -> object:
    """A `sleep` for `follow` that runs the next step at each poll, then stops the tail."""
    pending = list(steps)

    def sleep(_seconds: float) -> None:
        if not pending:
            raise Done
        step = pending.pop(0)
        if callable(step):
            step()

    return sleep


def run_follow(path: Path, options: TailOptions, *steps: object) -> str:
    out = io.StringIO()
    with pytest.raises(Done):
        follow(
            lambda: SpoolReader.open(str(path)),
            options,
            Output(out, options.as_json, terminal=False),
            sleep=stepped(*steps),  # type: ignore[arg-type]
        )
    return out.getvalue()


def test_follows_new_events_and_says_when_some_were_evicted(tmp_path: Path) -> None:
    b = Builder(tmp_path / "spool.db")
    sid = b.session("github")
    b.exchange(sid, "tools/call", 1, latency_us=10, tool="old_one")
    b.write()

    def more() -> None:
        nb = Builder(b.path, clock=b.clock + 10**9, sessions=b.sessions)
        nb.exchange(sid, "tools/call", 2, latency_us=10, tool="new_one")
        nb.add(sid, "notification", method="notifications/progress")
        nb.write()

    def evicted_then_more() -> None:
        nb = Builder(b.path, clock=b.clock + 2 * 10**9, sessions=b.sessions)
        for n in range(3, 6):
            nb.exchange(sid, "tools/call", n, latency_us=10, tool=f"t{n}")
        nb.write()
        conn = sqlite3.connect(b.path)
        with conn:  # the first four of those six events go, as an eviction would take them
            conn.execute(
                "DELETE FROM events WHERE seq IN"
                " (SELECT seq FROM events ORDER BY seq DESC LIMIT 4 OFFSET 2)"
            )
        conn.close()

    text = run_follow(b.path, TailOptions(None, last=0), None, more, evicted_then_more, None)
    lines = text.splitlines()
    assert "old_one" not in text  # -n 0: only what comes after the start
    assert "new_one" in lines[0] and "ok" in lines[0]
    assert "notifications/progress" in lines[1]
    assert lines[2] == "km tail: 4 events were evicted from the spool before km tail read them"
    assert "t5" in lines[3] and "ok" in lines[3]


def test_skips_a_backlog_it_cannot_keep_up_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tail_module, "BATCH", 10)
    monkeypatch.setattr(tail_module, "MAX_BEHIND", 20)
    b = Builder(tmp_path / "spool.db")
    sid = b.session("github")
    for n in range(50):
        b.add(sid, "notification", method=f"n/{n}")
    b.write()
    text = run_follow(b.path, TailOptions(None, from_start=True, as_json=True))
    docs = [orjson.loads(x) for x in text.splitlines()]
    notices = [d for d in docs if d["type"] == "notice"]
    assert notices == [
        {"type": "notice", "message": "skipped 30 events to keep up (showing the newest)"}
    ]
    methods = [d["method"] for d in docs if d["type"] == "event"]
    assert methods == [f"n/{n}" for n in range(10)] + [f"n/{n}" for n in range(40, 50)]


def test_a_real_session_followed_by_a_real_km_tail(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(KM_SPOOL=str(tmp_path / "spool.db"), KM_CONFIG=str(tmp_path / "none.toml"))
    env.pop("KM_API_URL", None)
    tail = subprocess.Popen(
        # a long hold: the exchange is one line however slowly this loaded machine answers
        [sys.executable, "-m", "km", "tail", "--json", "--since", "10m", "--hold", "30"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    proxied: subprocess.Popen[bytes] | None = None
    try:
        proxied = subprocess.Popen(
            [sys.executable, "-m", "km", "--name", "clock", *TIME_SERVER],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert proxied.stdin is not None and proxied.stdout is not None
        messages: list[dict[str, Any]] = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "get_current_time", "arguments": {"timezone": "UTC"}}},
        ]  # fmt: skip
        for m in messages:
            proxied.stdin.write(orjson.dumps(m) + b"\n")
            proxied.stdin.flush()
            if "id" in m:
                proxied.stdout.readline()  # its reply
        proxied.stdin.close()
        proxied.wait(timeout=30)
        seen: list[dict[str, Any]] = []
        buffer = b""
        deadline = time.monotonic() + 30
        assert tail.stdout is not None
        while not any(d.get("method") == "tools/call" for d in seen):
            left = deadline - time.monotonic()
            assert left > 0, f"km tail showed only {seen}"
            ready, _, _ = select.select([tail.stdout], [], [], left)
            if ready:
                chunk = os.read(tail.stdout.fileno(), 65536)
                assert chunk, tail.stderr.read() if tail.stderr else ""
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                seen += [orjson.loads(x) for x in complete]
        call = next(d for d in seen if d.get("method") == "tools/call")
        assert call["type"] == "exchange" and call["status"] == "ok"
        assert call["tool"] == "get_current_time" and call["server"] == "clock"
        assert isinstance(call["latency_us"], int) and call["request_id"] and call["reply_id"]
        notices = [d for d in seen if d["type"] == "notice"]
        assert all("waiting for the spool" in str(d["message"]) for d in notices)
        shown = [d["method"] for d in seen if d["type"] != "notice"]
        assert shown[:2] == ["initialize", "notifications/initialized"]
    finally:
        tail.send_signal(signal.SIGINT)
        code = tail.wait(timeout=10)
        for stream in (tail.stdout, tail.stderr, proxied.stdout if proxied else None):
            if stream is not None:
                stream.close()
    assert code == 130


@pytest.mark.parametrize("width", [80, 140])
def test_terminal_lines_fit_and_escape(tmp_path: Path, width: int) -> None:
    b = Builder(tmp_path / "spool.db")
    sid = b.session("a-server-name-much-longer-than-the-column\x1b[2J")
    b.exchange(
        sid, "tools/call", 1, latency_us=2_500_000, tool="read_file_with_a_long_name",
        status="tool-error", tokens=1500, risk=85,
    )  # fmt: skip
    b.add(sid, "notification", "s2c", method="notifications/message")
    b.write()
    out = io.StringIO()
    options = TailOptions(None, from_start=True, exit_when_idle=True)
    follow(lambda: SpoolReader.open(str(b.path)), options, Output(out, False, True, width))
    text = out.getvalue()
    assert "\x1b[2J" not in text  # the server name's escape is shown, never sent
    assert "\x1b[" in text  # styled: colours on a terminal
    plain = [_strip_ansi(x) for x in text.splitlines()]
    assert plain[0].startswith("time") and "status" in plain[0]
    assert all(len(x) <= width for x in plain), plain
    assert "tool-error" in plain[1] and "2.50s" in plain[1] and "85" in plain[1]
    assert "notificat" in plain[2] and "message" in plain[2]  # no tool: the method has its room
    if width == 140:
        assert "notifications/message" in plain[2]
        assert "read_file_with_a_long_name" in plain[1]  # room enough: not cut


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
