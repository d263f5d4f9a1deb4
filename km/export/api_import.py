"""`km import FILE --api`: the file's events sent to the Kilometers API, as the uplink sends
them (the same event JSON, batches, the API's idempotent ingest on event id). Sessions and
findings are not sent: the API keeps sessions from their events and finds findings itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from km.errors import KmError, UsageError
from km.export.importer import ImportResult
from km.export.jsonl import EVENT, SESSION, Record
from km.settings import Settings
from km.uplink.batches import SpoolRow, body_of, encode_event, gzip_body
from km.uplink.client import ApiClient, TransportError
from km.uplink.outcome import Delivered, decide
from km.uplink.secret import Secret

BATCH_EVENTS = 1000
TIMEOUT_S = 60.0


class ApiImportError(KmError):
    pass


def send_to_api(records: Iterator[Record], settings: Settings, result: ImportResult) -> str:
    if not settings.api_url or not settings.api_key:
        raise UsageError("--api needs the API's URL and key: run `km login` first")
    asyncio.run(_send(records, settings.api_url, Secret(settings.api_key), result))
    return settings.api_url


async def _send(records: Iterator[Record], url: str, key: Secret, result: ImportResult) -> None:
    hosts: dict[str, tuple[str | None, str | None]] = {}
    batch: list[SpoolRow] = []
    async with ApiClient(url, key, timeout_s=TIMEOUT_S) as client:
        for record in records:
            f = record.fields
            if record.type == SESSION:
                hosts[f["session_id"]] = (f.get("host"), f.get("km_version"))
                result.sessions += 1
                continue
            if record.type != EVENT:
                result.findings += 1
                continue
            host, version = hosts.get(f["session_id"], (None, None))
            batch.append(_row(f, host, version))
            if len(batch) >= BATCH_EVENTS:
                await _post(client, batch, result)
                batch = []
        if batch:
            await _post(client, batch, result)


def _row(f: dict[str, object], host: str | None, version: str | None) -> SpoolRow:
    def opt(name: str) -> object:
        return f.get(name)

    return SpoolRow(
        seq=0, id=f["id"], session_id=f["session_id"], server=f["server"],  # type: ignore[arg-type]
        direction=f["direction"], ts_ns=f["ts_ns"], kind=f["kind"],  # type: ignore[arg-type]
        method=opt("method"), rpc_id=opt("rpc_id"), size=f["size"],  # type: ignore[arg-type]
        payload=f["payload"], truncated=bool(opt("truncated")),  # type: ignore[arg-type]
        link_id=opt("link_id"), latency_us=opt("latency_us"), host=host,  # type: ignore[arg-type]
        km_version=version, tool=opt("tool"), status=opt("status"),  # type: ignore[arg-type]
        tokens=opt("tokens"), risk=opt("risk"),  # type: ignore[arg-type]
    )  # fmt: skip


async def _post(client: ApiClient, rows: list[SpoolRow], result: ImportResult) -> None:
    ids = [r.id for r in rows]
    body = gzip_body(body_of([encode_event(r) for r in rows]))
    try:
        reply = await client.post_events(body, gzipped=True)
    except TransportError as exc:
        raise ApiImportError(f"API {exc}; {result.events} events sent before it") from None
    outcome = decide(reply.status, reply.headers, reply.body, ids)
    if not isinstance(outcome, Delivered):
        reason = getattr(outcome, "reason", f"HTTP {reply.status}")
        raise ApiImportError(
            f"API refused a batch: {reason}; {result.events} events sent before it"
        )
    if outcome.rejected:
        first_id, why = outcome.rejected[0]
        raise ApiImportError(
            f"API rejected {len(outcome.rejected)} events (first {first_id}: {why});"
            f" {result.events} events sent before them"
        )
    result.events += len(rows)
    result.added += outcome.accepted
