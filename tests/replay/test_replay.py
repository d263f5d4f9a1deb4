"""km replay against real servers (mcp-server-time, server-everything) with sessions captured
through a real km: the same server matches (exit 0, timestamps and ids ignored), a differently
configured one differs (exit 1 and a diff), a server that dies or stalls is reported; and the
sans-IO plan/normalize/diff in memory."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from types import SimpleNamespace

import orjson
import pytest

from km.replay.plan import answer, difference, normalize, parse_path, plan
from tests.export.captures import (
    EVERYTHING,
    INIT,
    INITIALIZED,
    TIME_SERVER,
    call,
    capture,
    km_env,
    time_session,
)

PARIS = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "Europe/Paris"]


def session_of(env: dict[str, str], server: str) -> str:
    conn = sqlite3.connect(env["KM_SPOOL"])
    try:
        row = conn.execute("SELECT session_id FROM sessions WHERE server = ?", [server]).fetchone()
        return str(row[0])
    finally:
        conn.close()


def replay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "km", "replay", *args], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = km_env(tmp_path_factory.mktemp("replay"))
    time_session(env)
    capture(env, "everything", EVERYTHING, [
        INIT, INITIALIZED,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        call(3, "echo", {"message": "hello"}),
        call(4, "get-sum", {"a": 2, "b": 40}),
        {"jsonrpc": "2.0", "id": "five", "method": "prompts/get",
         "params": {"name": "simple-prompt"}},
    ])  # fmt: skip
    return env


def test_the_same_time_server_matches(env: dict[str, str]) -> None:
    sid = session_of(env, "clock")
    done = replay(env, sid[:13], "--", *TIME_SERVER)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 answers match, 0 differ" in done.stdout
    # Its current time changed since the capture: only the timestamp masking hides that.
    done = replay(env, sid, "--", *TIME_SERVER)
    assert done.returncode == 0


def test_a_differently_configured_server_differs(env: dict[str, str]) -> None:
    done = replay(env, session_of(env, "clock"), "--", *PARIS)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--- captured tools/list (id 2)" in done.stdout
    assert '+              "description": "IANA timezone name' in done.stdout
    assert "Europe/Paris" in done.stdout and "1 differ" in done.stdout
    # Ignoring what differs makes them match.
    done = replay(env, session_of(env, "clock"), "--ignore", "result.tools.*.inputSchema", "--",
                  *PARIS)  # fmt: skip
    assert done.returncode == 0, done.stdout


def test_server_everything_matches_its_own_capture(env: dict[str, str]) -> None:
    done = replay(env, session_of(env, "everything"), "--", *EVERYTHING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replayed 5 requests and 1 notifications" in done.stdout


def test_server_requests_get_minimal_answers(tmp_path_factory: pytest.TempPathFactory) -> None:
    env = km_env(tmp_path_factory.mktemp("roots"))
    env["KM_GRACE"] = "1"  # once it has roots, server-everything outlives its stdin
    init = {**INIT, "params": {**INIT["params"], "capabilities": {"roots": {"listChanged": True}}}}
    messages = [init, INITIALIZED, call(2, "echo", {"message": "x"})]
    capture(env, "rooted", EVERYTHING, messages, exit_codes=(0, 143))
    conn = sqlite3.connect(env["KM_SPOOL"])
    asked = conn.execute(
        "SELECT count(*) FROM events WHERE method = 'roots/list' AND direction = 's2c'"
    ).fetchone()[0]
    conn.close()
    assert asked == 1  # the server asked the capturing client for its roots
    done = replay(env, session_of(env, "rooted"), "--", *EVERYTHING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "answered 1 server requests" in done.stdout


def test_a_server_that_exits_or_stalls(env: dict[str, str]) -> None:
    sid = session_of(env, "clock")
    done = replay(env, sid, "--", sys.executable, "-c", "pass")
    assert done.returncode == 1
    assert "the server exited (code 0) before replying" in done.stdout
    done = replay(env, sid, "--timeout", "1", "--", sys.executable, "-c",
                  "import time; time.sleep(60)")  # fmt: skip
    assert done.returncode == 1 and "no reply within 1 s" in done.stdout
    done = replay(env, "no-such-session", "--", *TIME_SERVER)
    assert done.returncode == 2 and "no session" in done.stderr
    done = replay(env, sid, "--", "/nonexistent/server")
    assert done.returncode == 127 and "command not found" in done.stderr


def ev(i: str, kind: str, direction: str = "c2s", **kw: object) -> SimpleNamespace:
    base: dict[str, object] = dict(
        id=i, kind=kind, direction=direction, method=None, rpc_id=None, link_id=None,
        tool=None, truncated=False, payload=b"{}",
    )  # fmt: skip
    base.update(kw)
    return SimpleNamespace(**base)


def test_plan_sends_client_messages_and_pairs_replies() -> None:
    steps = plan([
        ev("a", "request", method="tools/call", rpc_id='"x"', tool="echo", payload=b"A"),
        ev("b", "request", "s2c", method="roots/list", rpc_id="0"),
        ev("c", "response", "c2s", link_id="b"),  # the client's answer: not replayed
        ev("d", "response", "s2c", link_id="a", payload=b"R"),
        ev("e", "notification", method="notifications/x"),
        ev("f", "request", method="tools/call", rpc_id="7", truncated=True),
    ])  # fmt: skip
    assert [(s.method, s.rpc_id, s.expected) for s in steps] == [
        ("tools/call", "x", b"R"),
        ("notifications/x", None, None),
        ("tools/call", 7, None),
    ]
    assert steps[0].label == 'tools/call echo (id "x")' and steps[2].problem


def test_normalize_masks_ids_timestamps_and_ignored_paths() -> None:
    a = {"jsonrpc": "2.0", "id": 1, "result": {"text": "at 2026-12-06T15:58:24+00:00 ok",
         "v": "1.0", "items": [{"t": 1}, {"t": 2}]}}  # fmt: skip
    b = {"jsonrpc": "2.0", "id": 99, "result": {"text": "at 2027-01-01T00:00:00.5Z ok",
         "v": "2.0", "items": [{"t": 3}, {"t": 4}]}}  # fmt: skip
    ignore = [parse_path("result.v"), parse_path("result.items.*.t")]
    assert normalize(a, ignore) == normalize(b, ignore)
    diff = difference("x", a, b)
    assert diff is not None and '-    "v": "1.0"' in diff and '+    "v": "2.0"' in diff
    assert '"text": "at <timestamp> ok"' in diff  # context: the timestamps agree once masked
    assert difference("x", a, b, ignore) is None
    assert answer({"id": 3, "method": "roots/list"})["result"] == {"roots": []}
    assert answer({"id": 4, "method": "sampling/createMessage"})["error"]["code"] == -32601
    with pytest.raises(ValueError):
        parse_path("..")


def test_a_captured_reply_that_is_not_json_is_compared_as_text() -> None:
    assert difference("x", orjson.loads(b'{"id":1}'), {"id": 2}) is None
    assert difference("x", "garbage", {"id": 2}) is not None
