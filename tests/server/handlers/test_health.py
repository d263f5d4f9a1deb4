"""/health answers while the process runs; /ready only while the store answers."""

from __future__ import annotations

import pytest

from tests.server.conftest import Api, event_json
from tests.server.schema_check import check_response


@pytest.mark.asyncio
async def test_health_and_ready(api: Api) -> None:
    for path, expected in (("/health", "ok"), ("/ready", "ready")):
        status, body, _ = await api.get(path)
        assert (status, body) == (200, {"status": expected})
        check_response("GET", path, 200, body)


@pytest.mark.asyncio
async def test_a_closed_store_makes_ready_503_and_ingest_503(api: Api) -> None:
    key = await api.new_key("acme")
    await api.store.close()
    status, body, _ = await api.get("/ready")
    assert status == 503
    check_response("GET", "/ready", 503, body)
    assert "closed" in body["error"]
    status, body, _ = await api.get("/health")
    assert status == 200  # the process still runs
    # Authentication itself needs the store: 503 with Retry-After, never a 401.
    status, body, resp = await api.post_events(key, [event_json()])
    assert status == 503
    assert resp.headers["Retry-After"] == "1"
    check_response("POST", "/api/v1/events", 503, body)
