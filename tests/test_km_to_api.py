"""The whole path with real processes: `km` in front of a server, its capture process
redacting and uplinking to a real `km serve` over loopback; and offline capture delivered
later by `km sync`."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KM, ProcessReaper

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get_json(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_server(reaper: ProcessReaper, db: Path, port: int, env: dict[str, str]) -> str:
    proc = reaper.popen(
        [*KM, "serve", "--port", str(port), "--database-url", f"sqlite:///{db}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "km serve exited"
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=2):
                return base
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("km serve not ready within 30 s")


def create_key(db: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [*KM, "serve", "keys", "create", "--account", "acme", "--database-url", f"sqlite:///{db}"],
        capture_output=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    key = result.stdout.decode().strip().splitlines()[-1].strip()
    assert key.startswith("km_live_")
    return key


def session_lines(n: int) -> bytes:
    lines = [
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"gh",'
        b'"arguments":{"token":"%s","q":"issue %d"}}}\n' % (i, GITHUB_TOKEN.encode(), i)
        for i in range(n)
    ]
    return b"".join(lines)


def wait_for_events(base: str, key: str, count: int, timeout: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout
    events: list[Any] = []
    while time.monotonic() < deadline:
        events, cursor = [], None
        while True:
            url = f"{base}/api/v1/events?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = get_json(url, key)
            events += page["events"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        if len(events) >= count:
            return events
        time.sleep(0.1)
    raise TimeoutError(f"{len(events)} of {count} events reached the API")


@pytest.fixture(params=["auto", "threads"])
def server_env(
    km_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> dict[str, str]:
    """km's environment, with the fork-based relay and with the portable one (Windows')."""
    km_env["KM_CONFIG"] = str(tmp_path / "config.toml")  # never the developer's own config
    km_env["KM_RELAY"] = request.param
    return km_env


def test_captured_events_reach_the_api_redacted_and_once(
    server_env: dict[str, str], tmp_path: Path, spool_path: Path, reaper: ProcessReaper
) -> None:
    db = tmp_path / "server.db"
    key = create_key(db, server_env)
    base = start_server(reaper, db, free_port(), server_env)
    server_env["KM_API_URL"] = base
    server_env["KM_API_KEY"] = key
    data = session_lines(200)
    result = subprocess.run([*KM, "--name", "github", "cat"], input=data, capture_output=True,
                            env=server_env, timeout=60)  # fmt: skip
    assert result.returncode == 0 and result.stdout == data, "forwarded bytes are never redacted"
    events = wait_for_events(base, key, 400)
    assert len(events) == 400 and len({e["id"] for e in events}) == 400
    assert {e["server"] for e in events} == {"github"}
    payloads = "".join(e["payload"] for e in events)
    assert GITHUB_TOKEN not in payloads and "[REDACTED" in payloads
    spool_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("spool.db*"))
    assert GITHUB_TOKEN.encode() not in spool_bytes, "secrets never touch the disk in clear"
    assert key.encode() not in spool_bytes, "the API key is never stored"


def test_offline_capture_is_delivered_later_by_km_sync(
    server_env: dict[str, str], tmp_path: Path, reaper: ProcessReaper
) -> None:
    db = tmp_path / "server.db"
    key = create_key(db, server_env)
    port = free_port()
    server_env["KM_API_URL"] = f"http://127.0.0.1:{port}"  # nothing listens yet: offline
    server_env["KM_API_KEY"] = key
    data = session_lines(150)
    result = subprocess.run([*KM, "cat"], input=data, capture_output=True, env=server_env,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0 and result.stdout == data
    status = subprocess.run([*KM, "status", "--json"], capture_output=True, env=server_env,
                            timeout=30, check=True)  # fmt: skip
    assert json.loads(status.stdout)["events_by_state"]["pending"] == 300
    base = start_server(reaper, db, port, server_env)
    sync = subprocess.run([*KM, "sync", "-q"], capture_output=True, env=server_env, timeout=120)
    assert sync.returncode == 0, sync.stderr
    events = wait_for_events(base, key, 300, timeout=10)
    assert len({e["id"] for e in events}) == 300
