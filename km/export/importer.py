"""`km import FILE`: a JSONL export back into a spool (or to the API).

The file is read twice, streamed (bounded memory): first every line is decoded and checked
(header first, end record last, its counts matching), then the records are written. So a
truncated or hand-broken file changes nothing, and the error names the line. With `partial`,
the records before the first bad line are imported and the result says it is partial.
Importing is idempotent on ids (events, sessions, findings already there are left as they are).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from km.events import IN_FLIGHT, PENDING
from km.export.jsonl import EVENT, FINDING, HEADER, SESSION, JsonlError, Record, decode_line
from km.spool.errors import classify_sqlite
from km.spool.store import BUSY_TIMEOUT_S, SpoolStore, immediate_transaction

BATCH = 5000  # records a transaction


@dataclass(slots=True)
class ImportResult:
    sessions: int = 0  # records read
    events: int = 0
    findings: int = 0
    added: int = 0  # rows the spool did not have
    error: JsonlError | None = None  # where a partial import stopped
    ignored_fields: set[str] = field(default_factory=set)  # fields this spool has no column for


def read_records(
    stream: BinaryIO, *, on_bytes: Callable[[int], None] | None = None
) -> Iterator[Record]:
    """The file's records, checked; raises `JsonlError` at the first bad line (including a file
    that ends without its end record, or whose counts disagree)."""
    counts = {SESSION: 0, EVENT: 0, FINDING: 0}
    lineno = 0
    ended = False
    for line in stream:
        lineno += 1
        if on_bytes is not None:
            on_bytes(len(line))
        if ended:
            raise JsonlError(lineno, "data after the end record")
        doc = decode_line(line, lineno)
        if isinstance(doc, Record):
            if lineno == 1:
                raise JsonlError(1, "no km-export header: is this a km export (km export)?")
            counts[doc.type] += 1
            yield doc
            continue
        if doc["type"] == HEADER:
            if lineno != 1:
                raise JsonlError(lineno, "a second header: two exports pasted together?")
            continue
        if lineno == 1:
            raise JsonlError(1, "no km-export header: is this a km export (km export)?")
        for name, kind in (("sessions", SESSION), ("events", EVENT), ("findings", FINDING)):
            if doc[name] != counts[kind]:
                raise JsonlError(
                    lineno, f"the end record counts {doc[name]} {name}, the file has {counts[kind]}"
                )
        ended = True
    if lineno == 0:
        raise JsonlError(1, "empty file: not a km export")
    if not ended:
        raise JsonlError(lineno + 1, f"no end record after line {lineno}: the file is truncated")


def check_file(stream: BinaryIO, *, on_bytes: Callable[[int], None] | None = None) -> None:
    """Decode every line (the first pass); raises `JsonlError`."""
    for _ in read_records(stream, on_bytes=on_bytes):
        pass


class SpoolImporter:
    """Writes records into a spool, `BATCH` a transaction, ids already present skipped."""

    TABLES: ClassVar[dict[str, tuple[str, str]]] = {
        EVENT: ("events", "id"),
        SESSION: ("sessions", "session_id"),
        FINDING: ("findings", "id"),
    }

    def __init__(self, path: str, max_bytes: int) -> None:
        SpoolStore.open(path, max_bytes).close()  # create and migrate it like any km would
        self.path = path
        try:
            self.conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self.columns = {
                kind: {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
                for kind, (table, _) in self.TABLES.items()
            }
        except sqlite3.Error as exc:
            raise classify_sqlite(path, exc) from exc
        self._sql: dict[tuple[str, tuple[str, ...]], str] = {}

    def close(self) -> None:
        self.conn.close()

    def write(self, records: Iterator[Record], result: ImportResult) -> None:
        batch: list[Record] = []
        try:
            for record in records:
                batch.append(record)
                if len(batch) >= BATCH:
                    self._flush(batch, result)
                    batch = []
        finally:  # a partial import keeps what came before the bad line
            if batch:
                self._flush(batch, result)

    def _flush(self, batch: list[Record], result: ImportResult) -> None:
        before = self.conn.total_changes
        with immediate_transaction(self.conn, self.path) as conn:
            for record in batch:
                sql, values = self._statement(record, result)
                conn.execute(sql, values)
                if record.type == EVENT:
                    result.events += 1
                elif record.type == SESSION:
                    result.sessions += 1
                else:
                    result.findings += 1
        result.added += self.conn.total_changes - before

    def _statement(self, record: Record, result: ImportResult) -> tuple[str, list[Any]]:
        fields = record.fields
        if record.type == EVENT and fields.get("state") == IN_FLIGHT:  # another sender's lease
            fields["state"] = PENDING
        if record.type == EVENT:
            fields.pop("lease_owner", None)
            fields.pop("lease_until_ns", None)
        known = self.columns[record.type]
        names = tuple(n for n in fields if n in known)
        result.ignored_fields.update(n for n in fields if n not in known)
        key = (record.type, names)
        sql = self._sql.get(key)
        if sql is None:
            table, _ = self.TABLES[record.type]
            marks = ", ".join("?" * len(names))
            sql = (
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
            )
            self._sql[key] = sql
        return sql, [fields[n] for n in names]


def describe(result: ImportResult, where: str) -> str:
    text = (
        f"imported {result.events} events, {result.sessions} sessions, {result.findings} findings"
        f" into {where} ({result.added} new, the rest already there)"
    )
    if result.ignored_fields:
        left_out = ", ".join(sorted(result.ignored_fields))
        text += f"; fields this spool has no column for were left out: {left_out}"
    return text


__all__ = ["ImportResult", "SpoolImporter", "check_file", "describe", "read_records"]
