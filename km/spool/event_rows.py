"""Inserting events into the spool's `events` table, shaped for Python's `sqlite3` binding.

The spool writer stores every captured message, so the cost per row is the capture rate:
- `sqlite3` binds an exact `int`, `float` or `str` at once, but first sends anything else
  (`None`, `bytes`, `bool`) through its adapter look-up (a tuple, a dict look-up, two attribute
  look-ups). An event has up to eight `None` columns, so a row here holds none: a text column's
  `None` is sent as the integer 0 and an integer column's `None` as `''`, and the statement
  turns them back into NULL with `nullif` (in SQLite an integer never equals a text, so no real
  value can be taken for the stand-in).
- `sqlite3` lets go of the GIL around each step of a statement, and a thread that gave it up
  must wait, up to the switch interval (5 ms), for a busy thread to hand it back: the spool
  writer inserting row by row while the capture thread runs Python gets a few rows through per
  switch. So rows go up to 48 to one statement (`STEP_ROWS`): one step, one hand-off, per
  that many (256 gained nothing measurable, and its prepared statement holds ~0.5 MB).

`benchmarks/test_bench_capture.py` (group `capture: spool rows for one read`) measures it against
the former row-by-row statement: about half the time per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from km.events import Event

# Rows per statement, largest first: 48 x 18 = 864 parameters, under SQLite's limit before 3.32
# (999; Ubuntu 20.04 ships 3.31). A batch goes in as many of the largest as fit, then the next
# size down for the rest.
STEP_ROWS = (48, 8, 1)

_COLUMNS = (
    "id, session_id, server, direction, ts_ns, mono_ns, kind, method, rpc_id, size, payload,"
    " truncated, link_id, latency_us, tool, status, tokens, risk"
)
# One row's values, in `_COLUMNS` order: text columns that may be NULL come as 0 for NULL,
# integer columns that may be NULL as ''.
_VALUES = (
    "(?, ?, ?, ?, ?, ?, ?, nullif(?, 0), nullif(?, 0), ?, ?, ?, nullif(?, 0), nullif(?, ''),"
    " nullif(?, 0), nullif(?, 0), nullif(?, ''), nullif(?, ''))"
)


def _insert(rows: int) -> str:
    values = ", ".join([_VALUES] * rows)
    return f"INSERT INTO events ({_COLUMNS}) VALUES {values} ON CONFLICT (id) DO NOTHING"


INSERTS = {rows: _insert(rows) for rows in STEP_ROWS}


def event_rows(events: Sequence[Event]) -> list[tuple[object, ...]]:
    """The events as `INSERT_ONE` rows (no `None` in them)."""
    return [
        (
            e.id,
            e.session_id,
            e.server,
            e.direction,
            e.ts_ns,
            e.mono_ns,
            e.kind,
            0 if e.method is None else e.method,
            0 if e.rpc_id is None else e.rpc_id,
            e.size,
            e.payload,
            1 if e.truncated else 0,
            0 if e.link_id is None else e.link_id,
            "" if e.latency_us is None else e.latency_us,
            0 if e.tool is None else e.tool,
            0 if e.status is None else e.status,
            "" if e.tokens is None else e.tokens,
            "" if e.risk is None else e.risk,
        )
        for e in events
    ]


def insert_steps(rows: list[tuple[object, ...]]) -> list[tuple[str, list[tuple[object, ...]]]]:
    """`rows` as (statement, its parameter sets) pairs for `executemany`: whole statements of
    the largest size first, then smaller ones for the rest. Executed in that order, the rows
    are stored in their order."""
    steps: list[tuple[str, list[tuple[object, ...]]]] = []
    start = 0
    for size in STEP_ROWS:
        end = start + (len(rows) - start) // size * size
        if end > start:
            params = (
                rows[start:end]
                if size == 1
                else [
                    tuple(chain.from_iterable(rows[i : i + size])) for i in range(start, end, size)
                ]
            )
            steps.append((INSERTS[size], params))
        start = end
    return steps
