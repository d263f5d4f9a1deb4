"""km export -> km import with real captures (real km, real MCP servers): every field of every
event, session and finding comes back equal, payloads byte for byte; a truncated or edited file
changes nothing and names its line; importing twice adds nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.export.captures import EVERYTHING, INIT, INITIALIZED, call, capture, km_env, time_session

KM = [sys.executable, "-m", "km"]


def km(
    env: dict[str, str], *args: str, spool: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = dict(env)
    if spool is not None:
        env["KM_SPOOL"] = str(spool)
    return subprocess.run([*KM, *args], env=env, capture_output=True, timeout=120)


def table(path: Path, name: str, key: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    try:
        cur = conn.execute(f"SELECT * FROM {name} ORDER BY {key}")
        names = [d[0] for d in cur.description]
        return [{n: v for n, v in zip(names, r, strict=True) if n != "seq"} for r in cur]
    finally:
        conn.close()


def everything(tables: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        "events": table(tables, "events", "seq"),
        "sessions": table(tables, "sessions", "session_id"),
        "findings": table(tables, "findings", "id"),
    }


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    tmp = tmp_path_factory.mktemp("capture")
    env = km_env(tmp)
    time_session(env)
    capture(env, "everything", EVERYTHING, [
        INIT, INITIALIZED,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        call(3, "echo", {"message": "héllo ✓ \u2028"}),
        call(4, "get-sum", {"a": 2, "b": 40}),
        call(5, "trigger-long-running-operation", {"duration": 0.2, "steps": 2},
             meta={"progressToken": "p1"}),
        {"jsonrpc": "2.0", "id": 6, "method": "resources/read",
         "params": {"uri": "demo://resource/static/document/architecture.md"}},
    ])  # fmt: skip
    return env, tmp / "spool.db"


def test_round_trip_is_lossless(captured: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, spool = captured
    out = tmp_path / "all.jsonl"
    done = km(env, "export", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "all.jsonl.partial").exists()
    lines = out.read_bytes().splitlines()
    assert orjson.loads(lines[0])["type"] == "km-export"
    assert orjson.loads(lines[-1]) == {"type": "end", "sessions": 2, "events": len(lines) - 4,
                                      "findings": 0}  # fmt: skip
    copy = tmp_path / "copy.db"
    done = km(env, "import", str(out), spool=copy)
    assert done.returncode == 0, done.stderr
    original, imported = everything(spool), everything(copy)
    assert len(original["events"]) > 20
    assert imported == original  # every column of every row, payload bytes included
    assert any(b"\xc3\xa9" in e["payload"] for e in imported["events"])  # é, as captured
    assert {e["status"] for e in imported["events"]} >= {"ok", "tool-error"}
    # Idempotent on ids: a second import adds nothing.
    again = km(env, "import", str(out), spool=copy)
    assert again.returncode == 0 and b"(0 new" in again.stderr
    assert everything(copy) == original


def test_a_filtered_export_holds_just_those_events(
    captured: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, _ = captured
    done = km(env, "export", "server:everything", "tool:echo")
    assert done.returncode == 0, done.stderr
    docs = [orjson.loads(x) for x in done.stdout.splitlines()]
    events = [d for d in docs if d["type"] == "event"]
    assert [(e["kind"], e["tool"]) for e in events] == [("request", "echo"), ("response", "echo")]
    assert events[0]["payload"]["params"]["arguments"]["message"] == "héllo ✓ \u2028"
    assert [d["server"] for d in docs if d["type"] == "session"] == ["everything"]
    assert docs[0]["filter"] == "server:everything tool:echo"


def test_a_truncated_file_changes_nothing_and_names_the_line(
    captured: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, _ = captured
    out = tmp_path / "all.jsonl"
    assert km(env, "export", "-o", str(out)).returncode == 0
    whole = out.read_bytes()
    target = tmp_path / "target.db"
    assert km(env, "import", str(out), spool=target).returncode == 0
    before = everything(target)
    lines = whole.splitlines(keepends=True)
    # A new session's lines, cut off in the middle of line 6: nothing of it may be stored.
    other = tmp_path / "other.jsonl"
    mangled = [lines[0]] + [
        ln.replace(b'session_id":"', b'session_id":"X').replace(b'"id":"', b'"id":"X')
        for ln in lines[1:6]
    ]
    other.write_bytes(b"".join(mangled) + lines[6][:40])
    done = km(env, "import", str(other), spool=target)
    assert done.returncode == 2
    message = done.stderr.decode()
    assert message.count("\n") == 1 and "line 7: not JSON" in message and "truncated" in message
    assert "nothing imported" in message
    assert everything(target) == before
    # --partial takes the whole lines before it and says the import is partial.
    done = km(env, "import", "--partial", str(other), spool=target)
    assert done.returncode == 1 and b"PARTIAL import" in done.stderr and b"line 7" in done.stderr
    after = everything(target)
    assert len(after["events"]) == len(before["events"]) + 3  # lines 4-6: 2 sessions first
    assert len(after["sessions"]) == len(before["sessions"]) + 2
    assert after["events"][: len(before["events"])] == before["events"]


def test_an_edited_file_with_a_wrong_count_or_field_is_refused(
    captured: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, _ = captured
    out = tmp_path / "all.jsonl"
    assert km(env, "export", "-o", str(out)).returncode == 0
    lines = out.read_bytes().splitlines(keepends=True)
    target = tmp_path / "t.db"
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_bytes(b"".join(lines[:5] + lines[6:]))  # one event deleted by hand
    done = km(env, "import", str(dropped), spool=target)
    assert done.returncode == 2 and b"the end record counts" in done.stderr
    assert f"line {len(lines) - 1}:".encode() in done.stderr
    edited = tmp_path / "edited.jsonl"
    doc = orjson.loads(lines[4])
    doc["ts_ns"] = "yesterday"
    edited.write_bytes(b"".join([*lines[:4], orjson.dumps(doc) + b"\n", *lines[5:]]))
    done = km(env, "import", str(edited), spool=target)
    assert done.returncode == 2 and b"line 5: event field 'ts_ns'" in done.stderr
    not_export = tmp_path / "x.jsonl"
    not_export.write_bytes(b'{"hello": 1}\n')
    done = km(env, "import", str(not_export), spool=target)
    assert done.returncode == 2 and b"line 1" in done.stderr
    assert not target.exists() or everything(target)["events"] == []
