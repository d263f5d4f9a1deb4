"""`km serve` through its entry function `run_serve([...])`, on both backends, and one real
`python -m km.server` process serving on a free port."""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from km.errors import UsageError
from km.server.cli import run_serve
from km.server.errors import NotFound
from km.server.stores import open_store
from km.settings import Settings
from tests.server.conftest import BACKENDS, PG_URL, create_pg_schema, drop_pg_schema, pg_url_in

SERVE_START_TIMEOUT_S = 20.0
SERVE_STOP_TIMEOUT_S = 15.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings that read no user config file and no environment."""
    return Settings.load({"KM_CONFIG": str(tmp_path / "absent.toml")})


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'cli' / 'server.db'}"
        return
    schema = asyncio.run(create_pg_schema())
    try:
        yield pg_url_in(schema)
    finally:
        asyncio.run(drop_pg_schema(schema))


def serve(
    args: list[str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = run_serve(args, settings)
    out, err = capsys.readouterr()
    return code, out, err


def keys_json(
    db_url: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    code, out, _ = serve(["keys", "list", "--json", "--database-url", db_url], settings, capsys)
    assert code == 0
    result: list[dict[str, Any]] = orjson.loads(out)
    return result


async def _stored_key_rows(db_url: str) -> list[tuple[Any, ...]]:
    if db_url.startswith("sqlite://"):
        import sqlite3

        conn = sqlite3.connect(db_url.removeprefix("sqlite://"))
        try:
            return conn.execute("SELECT * FROM api_keys").fetchall()
        finally:
            conn.close()
    conn2 = await asyncpg.connect(db_url)
    try:
        return [tuple(r) for r in await conn2.fetch("SELECT * FROM api_keys")]
    finally:
        await conn2.close()


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(
    db_url: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = serve(
        ["keys", "create", "--account", "acme", "--label", "laptop", "--database-url", db_url],
        settings,
        capsys,
    )
    assert code == 0
    key = out.strip()
    assert out == key + "\n" and re.fullmatch(r"km_live_[A-Za-z0-9_-]{32}", key)
    assert key not in err and key[:12] in err
    rows = asyncio.run(_stored_key_rows(db_url))
    assert len(rows) == 1
    assert hashlib.sha256(key.encode()).hexdigest() in rows[0]
    assert all(key not in str(value) for value in rows[0])
    if db_url.startswith("sqlite://"):  # not in any file of the database either
        for file in Path(db_url.removeprefix("sqlite://")).parent.iterdir():
            assert key.encode() not in file.read_bytes()
    [listed] = keys_json(db_url, settings, capsys)
    assert listed["prefix"] == key[:12] and listed["account"] == "acme"
    assert listed["label"] == "laptop" and listed["revoked_ns"] is None
    assert key not in str(listed)


def test_keys_list_revoke_and_accounts(
    db_url: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    for account in ("acme", "acme", "globex"):
        assert (
            serve(
                ["keys", "create", "--account", account, "--database-url", db_url], settings, capsys
            )[0]
            == 0
        )
    keys = keys_json(db_url, settings, capsys)
    assert [k["account"] for k in keys] == ["acme", "acme", "globex"]
    code, out, _ = serve(["accounts", "list", "--json", "--database-url", db_url], settings, capsys)
    assert [a["name"] for a in orjson.loads(out)] == ["acme", "globex"]

    code, out, err = serve(
        ["keys", "revoke", str(keys[1]["id"]), "--database-url", db_url], settings, capsys
    )
    assert code == 0 and out == "" and "revoked" in err
    code, _, err = serve(
        ["keys", "revoke", str(keys[1]["id"]), "--database-url", db_url], settings, capsys
    )
    assert code == 0 and "already revoked" in err
    revoked = [k["revoked_ns"] is not None for k in keys_json(db_url, settings, capsys)]
    assert revoked == [False, True, False]
    with pytest.raises(NotFound):
        run_serve(["keys", "revoke", "4242", "--database-url", db_url], settings)

    code, out, _ = serve(["keys", "list", "--database-url", db_url], settings, capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "ACCOUNT", "PREFIX", "LABEL", "CREATED", "REVOKED"]
    assert len(lines) == 4
    code, out, _ = serve(["accounts", "list", "--database-url", db_url], settings, capsys)
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["acme", "globex"]


def test_database_url_from_settings_and_default_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "from-env.db"
    env_settings = Settings.load(
        {"KM_CONFIG": str(tmp_path / "absent.toml"), "KM_DATABASE_URL": str(db)}
    )
    assert serve(["keys", "create", "--account", "a"], env_settings, capsys)[0] == 0
    assert db.exists()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    default_settings = Settings.load({"KM_CONFIG": str(tmp_path / "absent.toml")})
    assert serve(["accounts", "list"], default_settings, capsys)[0] == 0
    assert (tmp_path / "xdg" / "km" / "server.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["keys"],
        ["keys", "create"],
        ["keys", "revoke", "abc"],
        ["accounts", "delete"],
        ["--port", "abc"],
        ["--port", "70000"],
        ["--reuse-port", "--port", "0"],
        ["--rate", "0"],
        ["--max-batch-bytes", "lots"],
        ["--database-url", "mysql://x"],
        ["--bogus"],
    ],
)
def test_usage_errors(args: list[str], settings: Settings) -> None:
    with pytest.raises(UsageError):
        run_serve(args, settings)


def test_help_returns_zero(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = serve(["--help"], settings, capsys)
    assert code == 0 and "--database-url" in out
    code, out, _ = serve(["keys", "create", "--help"], settings, capsys)
    assert code == 0 and "--account" in out


async def _serve_process(db_url: str, key: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "km.server", "--port", "0", "--database-url", db_url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    try:
        url = None
        async with asyncio.timeout(SERVE_START_TIMEOUT_S):
            while url is None:
                line = (await proc.stderr.readline()).decode()
                assert line, "km serve exited before listening"
                found = re.search(r"listening on (http://\S+)", line)
                url = found.group(1) if found else None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/ready") as resp:
                assert resp.status == 200
            async with http.get(
                f"{url}/api/v1/sessions", headers={"Authorization": f"Bearer {key}"}
            ) as resp:
                assert resp.status == 200
                assert await resp.json() == {"sessions": [], "next_cursor": None}
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(SERVE_STOP_TIMEOUT_S):
            assert await proc.wait() == 0
        assert await proc.stdout.read() == b""  # nothing but a new key ever goes to stdout
        assert "shutting down" in (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_a_real_km_serve_process(
    db_url: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = serve(
        ["keys", "create", "--account", "acme", "--database-url", db_url], settings, capsys
    )
    assert code == 0
    asyncio.run(_serve_process(db_url, out.strip()))


def test_pg_url_is_never_printed_with_its_password(settings: Settings) -> None:
    from km.server.cli import describe_store

    assert (
        describe_store("postgresql://u:secret@db.example:5433/km")
        == "postgresql://db.example:5433/km"
    )
    assert describe_store(PG_URL).startswith("postgresql://")
    assert describe_store("sqlite:///tmp/x.db") == "sqlite:/tmp/x.db"


def test_store_urls(tmp_path: Path) -> None:
    from km.server.stores import sqlite_path

    assert sqlite_path("sqlite:///abs/x.db") == "/abs/x.db"
    assert sqlite_path("relative.db") == "relative.db"
    assert sqlite_path("postgres://h/db") is None
    with pytest.raises(UsageError):
        sqlite_path("sqlite://")
    with pytest.raises(UsageError):
        asyncio.run(open_store("redis://x"))
