"""`q=`: the filter language on `GET /api/v1/events` and `GET /api/v1/sessions` (both
backends), a bad filter as a 400 naming the column, and `km sessions --api` / `km show --api`
reading them through the real CLI."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from tests.server.conftest import Api, event_json


def _exchange(
    n: int, session: str, server: str, tool: str, text: str, latency_us: int
) -> list[dict[str, object]]:
    req_id = str(uuid.uuid4())
    call = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": tool}}
    request = event_json(
        2 * n, id=req_id, session_id=session, server=server, rpc_id=str(n),
        payload=orjson.dumps(call).decode(),
    )  # fmt: skip
    reply = event_json(
        2 * n + 1, session_id=session, server=server, direction="s2c", kind="response",
        rpc_id=str(n), link_id=req_id, latency_us=latency_us,
        payload=orjson.dumps(
            {"jsonrpc": "2.0", "id": n, "result": {"content": [{"type": "text", "text": text}]}}
        ).decode(),
    )  # fmt: skip
    return [request, reply]


async def _load(api: Api) -> str:
    key = await api.new_key("acme")
    events = [
        *_exchange(1, "s-github", "github", "git_status", "clean tree", 2_000),
        *_exchange(2, "s-github", "github", "git_push", "Permission DENIED", 900_000),
        *_exchange(3, "s-time", "time", "convert_time", "12:00", 1_000),
        event_json(9, session_id="s-time", server="time", kind="request", rpc_id="99"),
    ]
    status, body, _ = await api.post_events(key, events)
    assert status == 200, body
    other = await api.new_key("other")  # another account's events never show
    await api.post_events(other, _exchange(1, "s-other", "github", "git_status", "denied", 5))
    return key


async def _ids(api: Api, key: str, q: str) -> list[tuple[str, str, str | None]]:
    status, body, _ = await api.get("/api/v1/events", key, q=q, limit=100)
    assert status == 200, body
    return [(e["server"], e["kind"], e["method"]) for e in body["events"]]


@pytest.mark.asyncio
async def test_events_q(api: Api) -> None:
    key = await _load(api)
    assert await _ids(api, key, '"permission denied"') == [("github", "response", "tools/call")]
    assert await _ids(api, key, "latency>500ms") == [("github", "response", "tools/call")]
    assert len(await _ids(api, key, "server:git* kind:request")) == 2
    assert await _ids(api, key, "server:time -kind:response kind:request status:pending") == [
        ("time", "request", "tools/call")
    ]
    assert len(await _ids(api, key, "(server:time OR latency<1500us) dir:s2c")) == 1
    assert len(await _ids(api, key, "")) == 7
    # q= combines with the other parameters
    status, body, _ = await api.get("/api/v1/events", key, q="kind:response", server="time")
    assert status == 200
    assert [e["server"] for e in body["events"]] == ["time"]


@pytest.mark.asyncio
async def test_sessions_q(api: Api) -> None:
    key = await _load(api)
    status, body, _ = await api.get("/api/v1/sessions", key, q='"denied"')
    assert status == 200, body
    assert [s["session_id"] for s in body["sessions"]] == ["s-github"]
    status, body, _ = await api.get("/api/v1/sessions", key, q="status:pending", limit=1)
    assert [s["session_id"] for s in body["sessions"]] == ["s-time"]


@pytest.mark.asyncio
async def test_bad_filter_is_a_400(api: Api) -> None:
    key = await _load(api)
    for path in ("/api/v1/events", "/api/v1/sessions"):
        status, body, _ = await api.get(path, key, q="latency>fast")
        assert status == 400
        assert body == {"error": "q: bad filter at column 9: a number such as 500ms, 2s or 800us"}


@pytest.mark.asyncio
async def test_cli_reads_the_api(api: Api, tmp_path: Path) -> None:
    key = await _load(api)
    env = dict(os.environ)
    env.update(
        KM_API_URL=api.url, KM_API_KEY=key, KM_CONFIG=str(tmp_path / "none.toml"),
        KM_SPOOL=str(tmp_path / "no-spool.db"),
    )  # fmt: skip

    async def km(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "km", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await km("sessions", "--api", "--json", '"permission denied"')
    assert code == 0, err
    assert [s["session_id"] for s in orjson.loads(out)] == ["s-github"]
    code, out, err = await km("show", "s-git", "--api", "--json", "--full")
    assert code == 0, err
    lines = [orjson.loads(x) for x in out.splitlines()]
    assert lines[0]["session_id"] == "s-github"
    assert [x["status"] for x in lines[1:]] == ["ok", "ok"]  # each exchange paired
    assert lines[2]["reply_payload"]["result"]["content"][0]["text"] == "Permission DENIED"
    code, out, err = await km("sessions", "--api", "(")
    assert code == 2 and "column 2" in err
    code, out, err = await km("show", "nope", "--api")
    assert code == 1 and "no session 'nope' at the API" in err
    assert key not in out + err
    assert not os.path.exists(env["KM_SPOOL"])
