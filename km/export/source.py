"""Reading the spool for an export: read-only, streamed in chunks (bounded memory however many
events), every column as the spool has it (`SELECT *`), the filter compiled to SQL by the
filter language. Built on the views' `SpoolReader` (read-only open, NULL for missing columns)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from km.insight.filter import Filter
from km.views.spool_read import SpoolReader

CHUNK = 2000  # rows fetched at a time


class ExportSource:
    """What an export reads: sessions with a selected event, the selected events in spool order,
    and the findings of those sessions."""

    def __init__(self, reader: SpoolReader, flt: Filter | None) -> None:
        self.reader = reader
        self.flt = flt

    def count_events(self) -> int:
        params: list[object] = []
        where = self.reader.where(self.flt, params)
        row = self.reader.query(f"SELECT count(*) FROM events e WHERE {where}", params).fetchone()
        return int(row[0])

    def sessions(self) -> Iterator[tuple[list[str], tuple[Any, ...]]]:
        params: list[object] = []
        where = ""
        if self.flt is not None:
            inner = self.reader.where(self.flt, params)
            where = (
                " WHERE EXISTS (SELECT 1 FROM events e WHERE e.session_id = s.session_id"
                f" AND {inner})"
            )
        yield from self._rows(
            f"SELECT * FROM sessions s{where} ORDER BY s.started_ns, s.session_id", params
        )

    def events(
        self, after_seq: int = 0, columns: tuple[str, ...] | None = None
    ) -> Iterator[tuple[list[str], tuple[Any, ...]]]:
        """The selected events in spool order: every column, or `columns` (NULL for those the
        spool lacks)."""
        params: list[object] = []
        where = self.reader.where(self.flt, params)
        what = "*"
        if columns is not None:
            what = ", ".join(
                f"e.{c}" if c in self.reader.columns else f"NULL AS {c}" for c in columns
            )
        yield from self._rows(
            f"SELECT {what} FROM events e WHERE e.seq > ? AND {where} ORDER BY e.seq",
            [after_seq, *params],
        )

    def findings(self, session_ids: set[str] | None) -> Iterator[tuple[list[str], tuple[Any, ...]]]:
        """Findings of `session_ids` (every finding when None), oldest first."""
        if not self.reader.has_findings:
            return
        for names, row in self._rows("SELECT * FROM findings ORDER BY ts_ns, id", []):
            if session_ids is None or row[names.index("session_id")] in session_ids:
                yield names, row

    def _rows(self, sql: str, params: list[object]) -> Iterator[tuple[list[str], tuple[Any, ...]]]:
        cursor = self.reader.query(sql, params)
        names = [d[0] for d in cursor.description]
        try:
            while chunk := cursor.fetchmany(CHUNK):
                for row in chunk:
                    yield names, row
        finally:
            cursor.close()
