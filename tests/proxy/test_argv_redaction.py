"""Secrets on the server's command line never reach the disk in clear: `sessions.command`
(and the derived server name) are redacted argument by argument, by a real km process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from km.redact import redact_argv
from tests.conftest import KM

GHP = "ghp_" + "Q" * 36
OPENAI = "sk-proj-" + "Z" * 40
SECRETS = [OPENAI, GHP, "hunter2hunter2", "pw-in-url", "plainvalue99", "ghp_x"]
ARGV = [
    "sh", "-c", "cat", "server",
    "--api-key", OPENAI,
    f"--token={GHP}",
    "--password", "hunter2hunter2",
    "DATABASE_URL=postgres://user:pw-in-url@db.example/app",
    "-e", "MY_SERVICE_SECRET=plainvalue99",
    "--env", "GITHUB_TOKEN=ghp_x",
    "--verbose", "--port", "8080",
]  # fmt: skip
MESSAGE = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'


def test_argv_secrets_are_redacted_in_the_spool(km_env: dict[str, str], spool_path: Path) -> None:
    result = subprocess.run(
        [*KM, *ARGV], input=MESSAGE, capture_output=True, env=km_env, timeout=60
    )
    assert result.returncode == 0 and result.stdout == MESSAGE, result.stderr
    db = sqlite3.connect(spool_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (command,) = db.execute("SELECT command FROM sessions").fetchone()
    finally:
        db.close()
    stored = json.loads(command)
    assert len(stored) == len(ARGV)
    assert stored[:4] == ARGV[:4] and stored[-3:] == ARGV[-3:]
    assert stored[5] == "[REDACTED:key]"
    assert stored[6].startswith("--token=[REDACTED:")
    assert "DATABASE_URL=postgres://[REDACTED:url_credentials]@db.example/app" in stored
    raw = b"".join(p.read_bytes() for p in spool_path.parent.iterdir() if p.is_file())
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
    status = subprocess.run([*KM, "status", "--json"], capture_output=True, env=km_env, timeout=60)
    for secret in SECRETS:
        assert secret.encode() not in status.stdout


def test_redact_argv_pairs() -> None:
    assert redact_argv(["--api-key", "x1", "--verbose"]) == [
        "--api-key",
        "[REDACTED:key]",
        "--verbose",
    ]
    # an option with a sensitive name followed by another option takes no value
    assert redact_argv(["--token", "--debug"]) == ["--token", "--debug"]
    # names that only count or describe secrets keep their values
    assert redact_argv(["--max-tokens", "100", "--token-type", "jwt"]) == [
        "--max-tokens", "100", "--token-type", "jwt",
    ]  # fmt: skip
    assert redact_argv(["-e", "API_KEY=abc", "-e", "LOG_LEVEL=debug"]) == [
        "-e", "API_KEY=[REDACTED:key]", "-e", "LOG_LEVEL=debug",
    ]  # fmt: skip
