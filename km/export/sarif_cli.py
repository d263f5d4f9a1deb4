"""`km export --format sarif`: the findings of the sessions FILTER selects (every finding
without a filter) as one SARIF 2.1.0 log."""

from __future__ import annotations

from typing import BinaryIO

import orjson

from km import __version__
from km.export.sarif import sarif_log
from km.export.source import ExportSource


def export_sarif(source: ExportSource, out: BinaryIO) -> int:
    """Writes the log; returns the number of results."""
    sessions: set[str] | None = None
    if source.flt is not None:
        sessions = {row[names.index("session_id")] for names, row in source.sessions()}
    findings = [dict(zip(names, row, strict=True)) for names, row in source.findings(sessions)]
    out.write(orjson.dumps(sarif_log(findings, km_version=__version__), option=orjson.OPT_INDENT_2))
    out.write(b"\n")
    return len(findings)
