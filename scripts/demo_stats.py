"""Print the API's `GET /api/v1/stats` JSON (on stdin) as a table: one row per server, method
and tool, names whole, and `-` where a figure does not apply (a notification has no latency,
a call without content no tokens)."""

from __future__ import annotations

import json
import sys
from typing import Any


def figure(value: object, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def table(rows: list[dict[str, Any]]) -> str:
    header = ("server", "method", "tool", "count", "errors", "tokens", "p50")
    cells = [
        (
            str(r["server"]),
            str(r["method"]),
            figure(r.get("tool")),
            figure(r["count"]),
            figure(r["errors"]),
            figure(r.get("tokens") or None),
            figure(r["latency_p50_us"], " us"),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    right = (False, False, False, True, True, True, True)
    lines = []
    for row in [header, *cells]:
        parts = [
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(row, widths, right, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def main() -> None:
    sys.stdout.write(table(json.load(sys.stdin)["stats"]))


if __name__ == "__main__":
    main()
