"""The audit log on both backends: administrative actions written with the action itself,
refused sign-ins rolled up per window (not a row per attempt), read per account through
`GET /api/v1/audit` (cursor pages) and by the operator through `km serve audit`."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from km.errors import UsageError
from km.server import cursor as cursors
from km.server.audit import AuditEntry, AuditRecord
from km.server.cli import run_serve
from km.server.config import ServerConfig
from km.server.ratelimit import RateLimit
from km.server.stores import open_store
from km.server.stores.base import EventStore
from km.settings import Settings
from tests.server.conftest import Api, event_json, serve_api
from tests.server.schema_check import check_response

POLL_TIMEOUT_S = 15.0
FAST_WINDOW = ServerConfig(port=0, rate_limit=RateLimit(1e9, 1e9), audit_window_s=0.2)


async def all_audit(store: EventStore, account_id: int | None) -> list[AuditEntry]:
    page = await store.list_audit(account_id, None, 1000)
    assert page.next_cursor is None
    return list(page.items)


@pytest.mark.asyncio
async def test_administrative_actions_are_audited_once(store: EventStore) -> None:
    acme = await store.create_account("acme")
    assert await store.create_account("acme") == acme  # exists: not audited again
    other = await store.create_account("globex")
    key = await store.create_key(acme.id, "h1", "km_live_abcd", "laptop")
    await store.revoke_key(key.id)
    await store.revoke_key(key.id)  # already revoked: nothing new happened
    assert await store.set_retention(acme.id, 7, actor="operator") == (30, 7)
    assert await store.set_retention(acme.id, 7) == (7, 7)  # unchanged: not audited
    assert await store.set_retention(424242, 7) is None
    mine = await all_audit(store, acme.id)
    assert [(e.action, e.target) for e in mine] == [
        ("retention.changed", "acme"),
        ("key.revoked", "km_live_abcd"),
        ("key.created", "km_live_abcd"),
        ("account.created", "acme"),
    ]
    assert mine[0].detail == {"from": 30, "to": 7}
    assert mine[2].detail == {"key_id": key.id, "label": "laptop"}
    assert {e.actor for e in mine} == {"operator"}
    assert [e.action for e in await all_audit(store, other.id)] == ["account.created"]
    assert len(await all_audit(store, None)) == 5


@pytest.mark.asyncio
async def test_audit_pages_cover_every_row_once(store: EventStore) -> None:
    acme = await store.create_account("acme")
    now = time.time_ns()
    records = [AuditRecord("auth.refused", f"10.0.0.{i}", now + i % 3, acme.id) for i in range(25)]
    await store.record_audit(records)
    seen: list[int] = []
    cursor = None
    while True:
        page = await store.list_audit(acme.id, cursor, 4)
        seen += [e.id for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    everything = await all_audit(store, acme.id)
    assert seen == [e.id for e in everything] and len(set(seen)) == 26  # + account.created
    assert [(e.ts_ns, e.id) for e in everything] == sorted(
        ((e.ts_ns, e.id) for e in everything), reverse=True
    )


async def _refuse(api: Api, key: str | None, times: int) -> None:
    for _ in range(times):
        if key is None:
            async with api.http.get(f"{api.url}/api/v1/sessions") as resp:
                assert resp.status == 401
        else:
            status, _, _ = await api.get("/api/v1/sessions", key)
            assert status in (401, 403)


async def _wait_for(api: Api, key: str, action: str) -> list[dict[str, Any]]:
    async with asyncio.timeout(POLL_TIMEOUT_S):
        while True:
            status, body, _ = await api.get("/api/v1/audit", key)
            assert status == 200, body
            check_response("GET", "/api/v1/audit", 200, body)
            entries = [e for e in body["entries"] if e["action"] == action]
            if entries:
                return entries
            await asyncio.sleep(0.1)


async def _wait_for_total(api: Api, key: str, action: str, total: int) -> list[dict[str, Any]]:
    """`action`'s entries once their counts add up to `total`."""
    async with asyncio.timeout(POLL_TIMEOUT_S):
        while True:
            entries = await _wait_for(api, key, action)
            if sum(e["count"] for e in entries) >= total:
                return entries
            await asyncio.sleep(0.1)


@pytest.mark.asyncio
async def test_refused_sign_ins_are_rolled_up_and_account_scoped(store: EventStore) -> None:
    async with serve_api(store, FAST_WINDOW) as api:
        good = await api.new_key("acme")
        revoked = await api.new_key("acme")
        other = await api.new_key("globex")
        for record in await store.list_keys():
            if revoked.startswith(record.prefix) and record.account_name == "acme":
                await store.revoke_key(record.id)
        await _refuse(api, "km_live_guessguessguessguessguessguess", 6)
        await _refuse(api, None, 2)
        await _refuse(api, "ghp_notakmkeyatall", 1)
        await _refuse(api, revoked, 3)
        # Counted per window from each kind's first refusal: on a slow machine one kind's
        # refusals may straddle two windows, so the counts are summed (the roll-up itself is
        # tested with a given clock in test_audit_rollup.py).
        refused = await _wait_for_total(api, good, "auth.refused", 3)
        assert all(e["target"] == revoked[:12] for e in refused)
        assert all(e["detail"] == {"reason": "revoked"} for e in refused)
        assert all(e["actor"] == "127.0.0.1" for e in refused)
        assert all(e["until_ns"] - e["ts_ns"] == 200_000_000 for e in refused)
        # The other account sees none of acme's log.
        _, body, _ = await api.get("/api/v1/audit", other)
        assert {e["action"] for e in body["entries"]} == {"account.created", "key.created"}
        assert all(e["target"] != revoked[:12] for e in body["entries"])
        # A forged audit cursor is a 400.
        forged = cursors.encode("a", 1, "not-a-number")
        status, _, _ = await api.get("/api/v1/audit", good, cursor=forged)
        assert status == 400
    # The operator's view has the refusals of keys nobody has, rolled up per kind, counted.
    rows = [e for e in await all_audit(store, None) if e.action == "auth.refused"]
    counts: Counter[tuple[str, str]] = Counter()
    for e in rows:
        counts[(e.detail["reason"], e.target or "")] += e.count
    assert counts == {
        ("missing", ""): 2,
        ("revoked", revoked[:12]): 3,
        ("unknown", ""): 1,  # not a km key: nothing of it is stored
        ("unknown", "km_live_gues"): 6,
    }
    assert len(rows) < sum(counts.values())  # rolled up: fewer rows than refusals


@pytest.mark.asyncio
async def test_the_audit_api_pages(api: Api) -> None:
    key = await api.new_key("acme")
    acme = (await api.store.list_accounts())[0]
    now = time.time_ns()
    await api.store.record_audit([AuditRecord("auth.refused", "x", now, acme.id)] * 5)
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, body, resp = await api.get("/api/v1/audit", key, limit=2, cursor=cursor)
        assert status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        entries += body["entries"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(entries) == 7 and len({e["id"] for e in entries}) == 7
    status, body, _ = await api.get("/api/v1/retention", key)
    assert (status, body) == (200, {"days": 30, "min_days": 1, "max_days": 365})
    await api.store.set_retention(acme.id, 90)
    assert (await api.get("/api/v1/retention", key))[1]["days"] == 90


def test_km_serve_audit_and_retention_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.load({"KM_CONFIG": str(tmp_path / "absent.toml")})
    db = ["--database-url", f"sqlite://{tmp_path / 'server.db'}"]
    assert run_serve(["keys", "create", "--account", "acme", *db], settings) == 0
    assert run_serve(["retention", "set", "--account", "acme", "7", *db], settings) == 0
    capsys.readouterr()
    assert run_serve(["retention", "show", "--json", *db], settings) == 0
    assert orjson.loads(capsys.readouterr().out) == [{"account": "acme", "retention_days": 7}]
    assert run_serve(["audit", "--json", *db], settings) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert [(r["action"], r["account"], r["actor"]) for r in rows] == [
        ("retention.changed", "acme", "operator"),
        ("key.created", "acme", "operator"),
        ("account.created", "acme", "operator"),
    ]
    assert run_serve(["audit", "--account", "acme", "--limit", "1", *db], settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["WHEN", "ACCOUNT", "ACTION"] and len(lines) == 2
    assert "retention.changed" in lines[1] and '{"from":30,"to":7}' in lines[1]
    for bad in (["retention", "set", "--account", "acme", "0"],
                ["retention", "set", "--account", "acme", "366"],
                ["audit", "--limit", "0"]):  # fmt: skip
        with pytest.raises(UsageError):
            run_serve([*bad, *db], settings)


@pytest.mark.asyncio
async def test_audit_rows_survive_reopening(tmp_path: Path) -> None:
    url = str(tmp_path / "server.db")
    store = await open_store(url)
    await store.migrate()
    acme = await store.create_account("acme")
    await store.close()
    store = await open_store(url)
    try:
        await store.migrate()
        assert [e.action for e in await all_audit(store, acme.id)] == ["account.created"]
        _ = event_json  # the same fixtures module as the other server tests
    finally:
        await store.close()
