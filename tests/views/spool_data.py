"""Spools with known content for the view tests, written by the real `SpoolStore` (plus the
insight columns and findings, added by `tests.insight.schema` when the spool lacks them)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from km.events import Event, SessionInfo
from km.spool.store import SpoolStore
from tests.insight.schema import SPOOL_EXTRA, apply_extra

T0 = 1_780_000_000 * 10**9


@dataclass
class Builder:
    """Events appended in order; `exchange` makes a request and its linked reply."""

    path: Path
    events: list[Event] = field(default_factory=list)
    insight: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[SessionInfo] = field(default_factory=list)
    clock: int = T0

    def session(self, server: str, sid: str | None = None, host: str = "box") -> str:
        sid = sid or str(uuid.uuid4())
        info = SessionInfo(sid, server, ("npx", server), 123, host, self.clock, "test")
        self.sessions.append(info)
        return sid

    def add(self, sid: str, kind: str, direction: str = "c2s", **kw: Any) -> str:
        self.clock += 1_000_000
        server = next(s.server for s in self.sessions if s.session_id == sid)
        payload = kw.pop("payload", None)
        insight: dict[str, Any] = {
            k: kw.pop(k) for k in ("tool", "status", "tokens", "risk") if k in kw
        }
        event = Event(
            id=str(uuid.uuid4()), session_id=sid, server=server, direction=direction,
            ts_ns=self.clock, mono_ns=self.clock, kind=kind, method=kw.pop("method", None),
            rpc_id=kw.pop("rpc_id", None), size=kw.pop("size", 0), payload=b"",
            link_id=kw.pop("link_id", None), latency_us=kw.pop("latency_us", None),
        )  # fmt: skip
        assert not kw, kw
        event.payload = payload if payload is not None else orjson.dumps({"kind": kind})
        event.size = event.size or len(event.payload)
        self.events.append(event)
        self.insight[event.id] = insight
        return event.id

    def exchange(
        self, sid: str, method: str, rpc_id: int, *, latency_us: int, status: str = "ok",
        tool: str | None = None, tokens: int | None = None, risk: int | None = None,
        result: object = "fine",
    ) -> tuple[str, str]:  # fmt: skip
        args = {"name": tool, "arguments": {"x": 1}} if tool else {}
        sent = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": args}
        req = self.add(
            sid, "request", method=method, rpc_id=str(rpc_id), tool=tool, risk=risk,
            payload=orjson.dumps(sent),
        )  # fmt: skip
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": rpc_id}
        if status == "error":
            body["error"] = {"code": -32000, "message": str(result)}
        else:
            body["result"] = {"content": [{"type": "text", "text": result}]}
            if status == "tool-error":
                body["result"]["isError"] = True
        reply = self.add(
            sid, "error" if status == "error" else "response", "s2c", method=method,
            rpc_id=str(rpc_id), link_id=req, latency_us=latency_us, status=status, tool=tool,
            tokens=tokens, risk=risk, payload=orjson.dumps(body),
        )  # fmt: skip
        return req, reply

    def finding(self, sid: str, event_id: str | None, rule: str, severity: str, kind: str) -> None:
        server = next(s.server for s in self.sessions if s.session_id == sid)
        self.findings.append(
            {"id": str(uuid.uuid4()), "session_id": sid, "event_id": event_id, "rule": rule,
             "severity": severity, "kind": kind, "message": f"{rule} fired", "ts_ns": self.clock,
             "server": server, "tool": None}
        )  # fmt: skip

    def write(self) -> None:
        store = SpoolStore.open(str(self.path), 1 << 30)
        try:
            for info in self.sessions:
                store.begin_session(info)
            store.append(self.events)
            for info in self.sessions:
                store.end_session(info.session_id, self.clock, 0)
        finally:
            store.close()
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            apply_extra(conn, SPOOL_EXTRA)
            for event_id, fields in self.insight.items():
                for name, value in fields.items():
                    conn.execute(f"UPDATE events SET {name} = ? WHERE id = ?", (value, event_id))
            # The made-up token counts above are the spool's: nothing is left to count.
            conn.execute(
                "INSERT INTO export_cursors (name, seq, updated_ns)"
                " SELECT 'tokens', coalesce(max(seq), 0), 0 FROM events WHERE true"
                " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq"
            )
            for f in self.findings:
                conn.execute(
                    f"INSERT INTO findings ({', '.join(f)}) VALUES ({', '.join('?' * len(f))})",
                    list(f.values()),
                )
        finally:
            conn.close()


def fingerprint(path: Path) -> tuple[str, ...]:
    """The spool's contents (database file and WAL): equal means nothing changed."""
    out = []
    for suffix in ("", "-wal"):
        name = str(path) + suffix
        if os.path.exists(name) and os.path.getsize(name) > 0:  # an empty WAL holds nothing
            data = Path(name).read_bytes()
            out.append(f"{suffix}:{hashlib.sha256(data).hexdigest()}")
    return tuple(out)
