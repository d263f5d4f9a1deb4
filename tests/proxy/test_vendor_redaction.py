"""Vendor credentials common in MCP server configs never reach the spool in clear, through a
real km process (a Slack webhook URL was stored in clear before)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from tests.conftest import KM
from tests.redact import fakes

SECRETS = {
    "slack_webhook": fakes.SLACK_WEBHOOK_PATH,
    "npm_token": fakes.NPM,
    "huggingface_token": fakes.HUGGINGFACE,
    "gitlab_token": fakes.GITLAB_PAT,
    "telegram_bot_token": fakes.TELEGRAM,
    "linear_key": fakes.LINEAR,
}


def test_vendor_credentials_are_redacted_in_the_spool(
    km_env: dict[str, str], spool_path: Path
) -> None:
    arguments = {
        "webhook": f"https://hooks.slack.com/services/{fakes.SLACK_WEBHOOK_PATH}",
        "note": " ".join(v for k, v in SECRETS.items() if k != "slack_webhook"),
    }
    params = {"name": "post", "arguments": arguments}
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    message = json.dumps(request).encode() + b"\n"
    result = subprocess.run(
        [*KM, "cat"], input=message, capture_output=True, env=km_env, timeout=60
    )
    assert result.returncode == 0 and result.stdout == message  # forwarded unchanged
    db = sqlite3.connect(spool_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        payloads = [bytes(p) for (p,) in db.execute("SELECT payload FROM events")]
    finally:
        db.close()
    assert len(payloads) == 2
    raw = spool_path.read_bytes()
    for kind, secret in SECRETS.items():
        assert secret.encode() not in raw, kind
        assert f"[REDACTED:{kind}]".encode() in payloads[0], kind
