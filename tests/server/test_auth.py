"""401 / 403 / 429 over HTTP, for every protected route; public routes need no key."""

from __future__ import annotations

import pytest

from km.server.app import ROUTES
from km.server.auth import PUBLIC_PATHS
from km.server.config import ServerConfig
from km.server.ratelimit import RateLimit
from km.server.stores.base import EventStore
from tests.server.conftest import Api, event_json, serve_api
from tests.server.schema_check import check_response

PROTECTED = [(m, p) for m, p, _ in ROUTES if p not in PUBLIC_PATHS]
# What an authorized `{"events": []}` gets where that is not the route's body: past auth.
AUTHORIZED = {"/api/v1/tools/approve": 400}


async def call(
    api: Api, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], object]:
    async with api.http.request(
        method, f"{api.url}{path}", json={"events": []}, headers=headers
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json()


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_missing_unknown_and_revoked_keys(api: Api, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer km_live_nope"}):
        status, _, body = await call(api, method, path, headers)
        assert status == 401
        check_response(method, path, 401, body)
    key = await api.new_key("acme")
    status, _, _ = await call(api, method, path, api.auth(key))
    assert status == AUTHORIZED.get(path, 200)
    record = next(k for k in await api.store.list_keys())
    await api.store.revoke_key(record.id)
    status, _, body = await call(api, method, path, api.auth(key))
    assert status == 403
    check_response(method, path, 403, body)
    assert record.prefix in str(body)


@pytest.mark.asyncio
@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
async def test_public_routes_need_no_key(api: Api, path: str) -> None:
    async with api.http.get(f"{api.url}{path}") as resp:
        assert resp.status == 200


@pytest.mark.asyncio
async def test_429_with_retry_after_per_key(store: EventStore) -> None:
    config = ServerConfig(port=0, rate_limit=RateLimit(rate=0.5, burst=2))
    async with serve_api(store, config) as api:
        key = await api.new_key("acme")
        other = await api.new_key("globex")
        for _ in range(2):
            status, _, _ = await api.post_events(key, [event_json()])
            assert status == 200
        status, body, resp = await api.post_events(key, [event_json()])
        assert status == 429
        check_response("POST", "/api/v1/events", 429, body)
        assert 1 <= int(resp.headers["Retry-After"]) <= 2  # one token at 0.5/s
        status, _, _ = await api.get("/api/v1/sessions", key)
        assert status == 429  # every route of the key shares its budget
        status, _, _ = await api.post_events(other, [event_json()])
        assert status == 200  # another key is not affected
        async with api.http.get(f"{api.url}/health") as health:
            assert health.status == 200  # public routes are not limited


@pytest.mark.asyncio
async def test_unknown_routes_and_methods_are_json_errors(api: Api) -> None:
    async with api.http.get(f"{api.url}/api/v1/nothing") as resp:
        assert resp.status == 404
        assert await resp.json() == {"error": "Not Found"}
    async with api.http.delete(f"{api.url}/api/v1/events") as resp:
        assert resp.status == 405
        assert "POST" in resp.headers["Allow"]
        assert "error" in await resp.json()
