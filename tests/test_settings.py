"""A bad km setting never keeps the user's server from starting: one warning on stderr, the
default used, the server started and its exit status kept; a bad redaction setting turns
capture off for the session (never captures unredacted)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from km.errors import UsageError
from km.insight.cost import Price
from km.settings import DEFAULT_DEFINITIONS_CAP, DEFAULT_GRACE_S, DEFAULT_PAYLOAD_CAP, Settings
from tests.conftest import KM

SECRET = "ghp_" + "A" * 36
MESSAGE = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"token":"%s"}}\n' % (
    SECRET.encode()
)
SERVER = ["sh", "-c", "cat; exit 3"]  # echoes, then exits with a status km must keep


def km_lines(stderr: bytes) -> list[str]:
    return [x for x in stderr.decode().splitlines() if x.startswith("km:")]


def spool_rows(spool: Path, sql: str) -> list[tuple[object, ...]]:
    if not spool.exists():
        return []
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("KM_MAX_PAYLOAD", "0"),
        ("KM_MAX_PAYLOAD", "inf"),
        ("KM_MAX_PAYLOAD", "lots"),
        ("KM_GRACE", "nan"),
        ("KM_GRACE", "inf"),
        ("KM_GRACE", "1e309"),
        ("KM_GRACE", "-1"),
        ("KM_QUEUE_MAX_FRAMES", "0"),
        ("KM_SPOOL_MAX_BYTES", "1e400"),
        ("KM_CAPTURE", "maybe"),
        ("KM_FLUSH", "soon"),
        ("KM_MAX_DEFINITIONS", "lots"),
        ("KM_MAX_DEFINITIONS", "inf"),
    ],
)
def test_a_bad_value_is_warned_once_and_the_server_runs(
    km_env: dict[str, str], spool_path: Path, var: str, value: str
) -> None:
    km_env[var] = value
    result = subprocess.run(
        [*KM, *SERVER], input=MESSAGE, capture_output=True, env=km_env, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == MESSAGE
    lines = km_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert var in lines[0] and "ignored" in lines[0]
    assert b"Traceback" not in result.stderr
    # capture went on with the default, and the secret was redacted as always
    payloads = spool_rows(spool_path, "SELECT payload FROM events")
    assert len(payloads) == 2
    assert all(SECRET.encode() not in p[0] for p in payloads)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("var", "value"), [("KM_REDACT", "off"), ("KM_REDACT", "bogus"), ("KM_REDACT_KEYS", "x,!!!")]
)
def test_a_bad_redaction_setting_turns_capture_off(
    km_env: dict[str, str], spool_path: Path, var: str, value: str
) -> None:
    km_env[var] = value
    result = subprocess.run(
        [*KM, *SERVER], input=MESSAGE, capture_output=True, env=km_env, timeout=60
    )
    assert result.returncode == 3
    assert result.stdout == MESSAGE
    lines = km_lines(result.stderr)
    assert len(lines) == 1 and var in lines[0] and "capture is off" in lines[0], result.stderr
    assert spool_rows(spool_path, "SELECT count(*) FROM events") in ([], [(0,)])
    assert not spool_path.exists() or SECRET.encode() not in spool_path.read_bytes()


def test_bad_config_file_values_follow_the_same_rule(
    km_env: dict[str, str], spool_path: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('max_payload = "0"\ndrain = "nan"\nno_such_key = 1\n[prices]\nm = 1\n')
    config.chmod(0o600)
    km_env["KM_CONFIG"] = str(config)
    result = subprocess.run(
        [*KM, *SERVER], input=MESSAGE, capture_output=True, env=km_env, timeout=60
    )
    assert result.returncode == 3
    assert result.stdout == MESSAGE
    lines = km_lines(result.stderr)
    assert len(lines) == 4, result.stderr
    assert spool_rows(spool_path, "SELECT count(*) FROM events") == [(2,)]


def test_a_bad_redaction_value_in_the_config_file_turns_capture_off(
    km_env: dict[str, str], spool_path: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('redact = "none"\n')
    config.chmod(0o600)
    km_env["KM_CONFIG"] = str(config)
    result = subprocess.run(
        [*KM, *SERVER], input=MESSAGE, capture_output=True, env=km_env, timeout=60
    )
    assert result.returncode == 3 and result.stdout == MESSAGE
    assert "capture is off" in result.stderr.decode()
    assert not spool_path.exists() or SECRET.encode() not in spool_path.read_bytes()


def test_km_commands_warn_once_too(km_env: dict[str, str]) -> None:
    km_env["KM_GRACE"] = "nan"
    result = subprocess.run([*KM, "status"], capture_output=True, env=km_env, timeout=60)
    assert result.returncode == 0
    assert len(km_lines(result.stderr)) == 1, result.stderr


def test_settings_apply_keeps_the_default() -> None:
    settings = Settings.load({"KM_MAX_PAYLOAD": "0", "KM_GRACE": "inf"})
    assert settings.payload_cap == DEFAULT_PAYLOAD_CAP
    assert settings.grace_s == DEFAULT_GRACE_S
    assert settings.capture
    settings = Settings.load({"KM_REDACT": "nope", "KM_CAPTURE": "1"})
    assert not settings.capture and settings.capture_off_reason


def test_set_still_validates_for_km_config_set() -> None:
    with pytest.raises(UsageError):
        Settings().set("grace_s", "nan", "km config set grace")
    with pytest.raises(UsageError):
        Settings().set("payload_cap", "0", "km config set max_payload")


def test_durations_take_units() -> None:
    settings = Settings.load({"KM_SPOOL_MAX_AGE": "7d", "KM_SYNC_TIMEOUT": "1m"})
    assert settings.spool_max_age_s == 7 * 86400
    assert settings.sync_timeout_s == 60


def test_insight_settings_follow_the_same_rule() -> None:
    settings = Settings.load({"KM_MAX_DEFINITIONS": "nan", "KM_MODEL": "claude-sonnet-4-5"})
    assert settings.definitions_cap == DEFAULT_DEFINITIONS_CAP
    assert settings.model == "claude-sonnet-4-5"
    assert Settings.load({"KM_MAX_DEFINITIONS": "32M"}).definitions_cap == 32 * 1024 * 1024
    with pytest.raises(UsageError):
        Settings().set("definitions_cap", "1e400", "km config set max_definitions")


def test_a_bad_prices_table_is_warned_once_and_the_built_in_prices_used(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('grace = "1"\n\n[prices]\nmy-model = ["cheap", 2]\n')
    config.chmod(0o600)
    settings = Settings()
    settings.set("config_path", str(config), "KM_CONFIG")
    settings.load_config_file()
    assert settings.prices == {} and settings.grace_s == 1.0
    lines = km_lines(capfd.readouterr().err.encode())
    assert len(lines) == 1 and "[prices] my-model" in lines[0] and "ignored" in lines[0]
    strict = Settings()
    strict.set("config_path", str(config), "KM_CONFIG")
    with pytest.raises(UsageError, match=r"\[prices\] my-model"):  # km doctor: strict
        strict.load_config_file(strict=True)
    config.write_text("[prices]\nmy-model = [1.5, 7]\n")
    good = Settings()
    good.set("config_path", str(config), "KM_CONFIG")
    good.load_config_file()
    assert good.prices == {"my-model": Price(1.5, 7.0)}
