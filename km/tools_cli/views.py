"""What `km tools` and `km status` show about tools: read from the spool, judged by the insight
core. Read-only; plain JSON-serialisable data out.

Per server identity (km's name + serverInfo name): its current tools with their context tokens,
the server's total, the definition history, drift still to review (a definition that differs
from the approved one, or from the first one ever seen when none was approved:
`inventory.pin_findings`), poisoning findings over the current definitions
(`poisoning.scan_tools`) and the risk and flow findings of recent sessions.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from km.insight.findings import HIGH, MEDIUM, Finding, at_least, severity_rank
from km.insight.inventory import pin_findings
from km.insight.poisoning import scan_tools
from km.spool.errors import classify_sqlite
from km.spool.insight import ServerInventory, read_findings, read_inventories
from km.spool.tokens import fill_tokens

RECENT_NS = 7 * 86400 * 10**9  # risk and flow findings of the last week are listed
ATTENTION_RECENT_NS = 86400 * 10**9  # ... and those of the last day need attention
READ_BUSY_TIMEOUT_MS = 2000
MAX_RECENT = 50  # risk and flow findings listed per server (worst, then newest, first)

View = dict[str, Any]


def read_tools(path: str, server: str | None = None, now_ns: int | None = None) -> View:
    """The `km tools` view of the spool at `path` (one server when `server` is given)."""
    now = time.time_ns() if now_ns is None else now_ns
    path = os.path.abspath(path)
    view: View = {"path": path, "exists": os.path.exists(path), "now_ns": now, "servers": []}
    if not view["exists"]:
        return view
    fill_tokens(path, max_events=0)  # the definitions' tokens the capture processes left
    uri = Path(path).as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise classify_sqlite(path, exc) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS:d}")
        conn.execute("BEGIN")
        if not _has_insight(conn):
            return view
        recent = read_findings(conn, server, since_ns=now - RECENT_NS)
        view["servers"] = [_server_view(inv, recent, now) for inv in read_inventories(conn, server)]
        view["other_findings"] = _unlisted(recent, view["servers"])
    except sqlite3.Error as exc:
        raise classify_sqlite(path, exc) from exc
    finally:
        conn.close()
    return view


def attention(view: View) -> list[dict[str, Any]]:
    """The findings that need the user's attention: drift still to review, poisoning at or
    above medium in the current definitions, risk and flow findings of the last day at or
    above high. Worst first."""
    out: list[dict[str, Any]] = []
    cutoff = int(view.get("now_ns", 0)) - ATTENTION_RECENT_NS
    for server in view["servers"]:
        out += server["drift"]
        out += [f for f in server["poisoning"] if at_least(f["severity"], MEDIUM)]
        out += [
            f
            for f in server["recent_findings"]
            if at_least(f["severity"], HIGH) and f["ts_ns"] >= cutoff
        ]
    out += [
        f
        for f in view.get("other_findings", [])
        if at_least(f["severity"], HIGH) and f["ts_ns"] >= cutoff
    ]
    out.sort(key=lambda f: -severity_rank(f["severity"]))
    return out


def _has_insight(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'inventory_lists'"
    ).fetchone()
    return bool(row[0])


def _server_view(inv: ServerInventory, recent: list[dict[str, Any]], now_ns: int) -> View:
    current = {t.name: t.hash for t in inv.tools}
    baseline = {t.name: t.pinned or t.first_hash for t in inv.tools}
    approved = {t.name for t in inv.tools if t.pinned}
    moved = _version_moved(inv)
    drift = pin_findings(
        inv.server, current, baseline, inv.kind, approved=approved, version_moved=moved
    )
    docs: list[object] = [_doc(t.definition) for t in inv.tools]
    poisoning = scan_tools(docs, server=inv.server)
    flagged = {f.tool for f in drift}
    calls = [f for f in recent if f["server"] == inv.server and f["kind"] in ("risk", "flow")]
    calls.sort(key=lambda f: (-severity_rank(f["severity"]), -f["ts_ns"]))
    tools = [
        {
            "name": t.name,
            "hash": t.hash,
            "tokens": t.tokens,
            "first_seen_ns": t.first_seen_ns,
            "last_seen_ns": t.last_seen_ns,
            "sessions": t.sessions,
            "approved_hash": t.pinned,
            "state": ("changed" if t.name in flagged else "approved" if t.pinned else "unreviewed"),
            "findings": sum(1 for f in poisoning if f.tool == t.name),
        }
        for t in inv.tools
    ]
    return {
        "server": inv.server,
        "info_name": inv.info_name or None,
        "info_version": inv.info_version,
        "kind": inv.kind,
        "last_listed_ns": inv.ts_ns,
        "session_id": inv.session_id,
        "tokens": inv.tokens,
        "problems": inv.problems.split("\n") if inv.problems else [],
        "tools": tools,
        "changes": inv.changes,
        "drift": [_json(f, now_ns) for f in drift],
        "poisoning": [_json(f, now_ns) for f in poisoning],
        "recent_findings": calls[:MAX_RECENT],
        "recent_findings_total": len(calls),
    }


def _version_moved(inv: ServerInventory) -> set[str]:
    """Names whose change since their baseline came with a new server version."""
    moved: set[str] = set()
    for t in inv.tools:
        if t.pinned:
            if inv.pin_versions.get(t.name) != inv.info_version:
                moved.add(t.name)
            continue
        changes = [c for c in inv.changes if c["name"] == t.name and c["change"] == "changed"]
        if changes and all(c["old_version"] != c["new_version"] for c in changes):
            moved.add(t.name)
    return moved


def _unlisted(recent: list[dict[str, Any]], servers: list[View]) -> list[dict[str, Any]]:
    """Risk and flow findings of servers with no tool listing stored."""
    listed = {s["server"] for s in servers}
    return [f for f in recent if f["server"] not in listed and f["kind"] in ("risk", "flow")]


def _json(finding: Finding, now_ns: int) -> dict[str, Any]:
    doc = finding.to_json()
    doc["ts_ns"] = now_ns
    return doc


def _doc(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # the poisoning scan reports what it is
