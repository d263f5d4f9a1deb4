"""Reading sessions and events from the Kilometers API (`--api`), with the configured URL and
key (`km login`, KM_API_URL / KM_API_KEY). The filter goes to the API as `q=` and is compiled
there by the same filter language; a bad one comes back as a 400 whose message is shown."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import urlencode

import orjson

from km.errors import KmError, UsageError
from km.settings import Settings
from km.views.exchange import Row
from km.views.spool_read import UnknownSession

PAGE = 1000  # events per request (the API caps its pages; it says so with next_cursor)
MAX_SESSION_PAGES = 50  # pages of sessions searched for an id prefix
TIMEOUT_S = 30.0


class ApiReadError(KmError):
    pass


class ApiReader:
    def __init__(self, settings: Settings) -> None:
        if not settings.api_url or not settings.api_key:
            raise UsageError("--api needs the API's URL and key: run `km login` first")
        self.url = settings.api_url
        self.key = settings.api_key

    def sessions(self, q: str | None, limit: int) -> list[dict[str, Any]]:
        query: dict[str, object] = {"limit": min(limit, PAGE)}
        if q:
            query["q"] = q
        doc = asyncio.run(self._get_all("/api/v1/sessions", query, "sessions", limit))
        return [_session(s) for s in doc]

    def session(self, prefix: str) -> dict[str, Any]:
        found = asyncio.run(self._find_session(prefix))
        if not found:
            raise UnknownSession(f"no session {prefix!r} at the API (km sessions --api lists them)")
        exact = [s for s in found if s["session_id"] == prefix]
        if exact:
            return _session(exact[0])
        if len(found) > 1:
            raise UnknownSession(f"session prefix {prefix!r} is ambiguous; type more of it")
        return _session(found[0])

    def findings(self, session_id: str) -> list[dict[str, Any]]:
        query: dict[str, object] = {"session": session_id, "limit": PAGE}
        return asyncio.run(self._get_all("/api/v1/findings", query, "findings", None))

    def events(self, session_id: str, q: str | None) -> list[tuple[Row, bool]]:
        query: dict[str, object] = {"session": session_id, "limit": PAGE}
        every = asyncio.run(self._get_all("/api/v1/events", query, "events", None))
        selected: set[str] | None = None
        if q:
            picked = asyncio.run(self._get_all("/api/v1/events", {**query, "q": q}, "events", None))
            selected = {e["id"] for e in picked}
        return [(_row(e), selected is None or e["id"] in selected) for e in every]

    async def _find_session(self, prefix: str) -> list[dict[str, Any]]:
        from km.uplink.client import ApiClient
        from km.uplink.secret import Secret

        found: list[dict[str, Any]] = []
        cursor: str | None = None
        async with ApiClient(self.url, Secret(self.key), timeout_s=TIMEOUT_S) as client:
            for _ in range(MAX_SESSION_PAGES):
                query: dict[str, object] = {"limit": PAGE}
                if cursor:
                    query["cursor"] = cursor
                doc = await self._get(client, "/api/v1/sessions", query)
                found += [s for s in doc["sessions"] if s["session_id"].startswith(prefix)]
                cursor = doc.get("next_cursor")
                if not cursor or len(found) > 1:
                    break
        return found

    async def _get_all(
        self, path: str, query: dict[str, object], key: str, limit: int | None
    ) -> list[dict[str, Any]]:
        from km.uplink.client import ApiClient
        from km.uplink.secret import Secret

        items: list[dict[str, Any]] = []
        cursor: str | None = None
        async with ApiClient(self.url, Secret(self.key), timeout_s=TIMEOUT_S) as client:
            while True:
                page = dict(query)
                if cursor:
                    page["cursor"] = cursor
                doc = await self._get(client, path, page)
                items += doc[key]
                cursor = doc.get("next_cursor")
                if not cursor or (limit is not None and len(items) >= limit):
                    return items[:limit] if limit is not None else items

    async def _get(self, client: Any, path: str, query: dict[str, object]) -> dict[str, Any]:
        from km.uplink.client import TransportError

        try:
            reply = await client.get(f"{path}?{urlencode(query)}")
        except TransportError as exc:
            raise ApiReadError(str(exc)) from None
        try:
            doc = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            doc = None
        if reply.status == 400 and isinstance(doc, dict):
            raise UsageError(f"the API refused the request: {client.scrub(str(doc.get('error')))}")
        if reply.status in (401, 403):
            raise ApiReadError(f"{client.shown_url}: the API key was refused ({reply.status})")
        if reply.status != 200 or not isinstance(doc, dict):
            raise ApiReadError(f"{client.shown_url}: unexpected answer (HTTP {reply.status})")
        return doc


def _session(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "session_id": s["session_id"],
        "server": s["server"],
        "host": s.get("host"),
        "started_ns": s["first_ts_ns"],
        "last_ts_ns": s.get("last_ts_ns"),
        "events": s.get("events"),
        "calls": s.get("calls"),
        "errors": s.get("errors"),
        "tokens": s.get("tokens"),
        "findings": s.get("findings"),
        "latency_p50_us": s.get("latency_p50_us"),
        "latency_p95_us": s.get("latency_p95_us"),
    }


def _row(e: dict[str, Any]) -> Row:
    payload = e.get("payload")
    if isinstance(payload, str):
        data = (
            base64.b64decode(payload) if e.get("payload_encoding") == "base64" else payload.encode()
        )
    else:
        data = b""
    return Row(
        id=e["id"], session_id=e["session_id"], server=e["server"], direction=e["direction"],
        ts_ns=e["ts_ns"], kind=e["kind"], method=e.get("method"), rpc_id=e.get("rpc_id"),
        size=e["size"], link_id=e.get("link_id"), latency_us=e.get("latency_us"),
        tool=e.get("tool"), status=e.get("status"), tokens=e.get("tokens"), risk=e.get("risk"),
        truncated=bool(e.get("truncated")), payload=data,
    )  # fmt: skip
