"""km import --api: a JSONL export of a real capture sent to a real `km serve` over loopback;
every event arrives once with its fields and payload; importing again adds nothing; a wrong key
is one line and nothing is marked sent anywhere."""

from __future__ import annotations

import base64
import sqlite3
import subprocess
from pathlib import Path

from tests.conftest import KM, ProcessReaper
from tests.export.captures import km_env, time_session
from tests.test_km_to_api import create_key, free_port, start_server, wait_for_events


def test_an_export_imported_into_the_api(tmp_path: Path, reaper: ProcessReaper) -> None:
    env = km_env(tmp_path)  # no API configured while capturing: the events stay local
    time_session(env)
    out = tmp_path / "session.jsonl"
    done = subprocess.run([*KM, "export", "-o", str(out)], env=env, capture_output=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(env["KM_SPOOL"])
    local = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
        "SELECT id, kind, payload, tool FROM events")}  # fmt: skip
    conn.close()
    db = tmp_path / "server.db"
    key = create_key(db, env)
    base = start_server(reaper, db, free_port(), env)
    api_env = {**env, "KM_API_URL": base, "KM_API_KEY": "km_live_wrong"}
    done = subprocess.run([*KM, "import", "--api", str(out)], env=api_env, capture_output=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 1 and done.stderr.count(b"\n") == 1 and b"401" in done.stderr
    assert b"km_live_wrong" not in done.stderr
    api_env["KM_API_KEY"] = key
    for _ in range(2):  # the second time: all duplicates, nothing new
        done = subprocess.run([*KM, "import", "--api", str(out)], env=api_env,
                              capture_output=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert f"imported {len(local)} events".encode() in done.stderr and b"(0 new" in done.stderr
    events = wait_for_events(base, key, len(local))
    assert len(events) == len(local)
    for e in events:
        kind, payload, tool = local[e["id"]]
        sent = (
            e["payload"].encode() if e["payload_encoding"] == "utf8"
            else base64.b64decode(e["payload"])
        )  # fmt: skip
        assert (e["kind"], sent, e["tool"]) == (kind, payload, tool)
