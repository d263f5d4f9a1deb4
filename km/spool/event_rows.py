"""Inserting events into the spool's `events` table, shaped for Python's `sqlite3` binding.

The spool writer stores every captured message, so the cost per row is the capture rate:
- `sqlite3` binds an exact `int`, `float` or `str` at once, but first sends anything else
  (`None`, `bytes`, `bool`) through its adapter look-up (a tuple, a dict look-up, two attribute
  look-ups). An event has up to eight `None` columns, so a row here holds none: a text column's
  `None` is sent as the integer 0 and an integer column's `None` as `''`, and the statement
  turns them back into NULL with `nullif` (in SQLite an integer never equals a text, so no real
  value can be taken for the stand-in).
- `sqlite3` lets go of the GIL around each step of a statement, and a thread that gave it up
  must wait, up to the switch interval, for a busy thread to hand it back: the spool writer
  inserting row by row while the capture thread runs Python gets a few rows through per
  switch. So rows go up to 120 to one statement (`STEP_ROWS`): one step, one hand-off, per
  that many. At the capture process's ceiling the writer spent ~30% of its time waiting for
  the GIL with 48 rows a statement; 120 captured 3-5% more of the rate workload at 60,000
  msg/s, builds in turn (`benchmarks/rate_threads.py`; benchmarks/README.md, "Hosting the
  uplink, and the capture ceiling"). 480 did a little better again, but each prepared
  statement costs memory: ~0.4 MB for 48 rows, ~1.1 MB for 120, ~3.6 MB for 480.

`benchmarks/test_bench_capture.py` (group `capture: spool rows for one read`) measures it against
the former row-by-row statement: about half the time per row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain

from km.events import Event

COLUMNS = 18  # parameters per row
# Rows per statement, largest first. A batch goes in as many of the largest as fit, then the
# next size down for the rest. 120 x 18 = 2,160 parameters: SQLite allows 32,766 by default
# since 3.32, but 999 before (Ubuntu 20.04 ships 3.31), so a connection that allows fewer gets
# `SMALL_STEP_ROWS` (48 x 18 = 864).
STEP_ROWS = (120, 8, 1)
SMALL_STEP_ROWS = (48, 8, 1)

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


INSERTS = {rows: _insert(rows) for rows in (*STEP_ROWS, *SMALL_STEP_ROWS)}


def step_rows(conn: sqlite3.Connection) -> tuple[int, ...]:
    """The statement sizes `conn` takes: `STEP_ROWS` unless its SQLite allows fewer
    parameters a statement than the largest needs."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return STEP_ROWS if STEP_ROWS[0] * COLUMNS <= limit else SMALL_STEP_ROWS


def event_rows(events: Sequence[Event]) -> list[tuple[object, ...]]:
    """The events as rows for `INSERTS` (no `None` in them)."""
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


def insert_steps(
    rows: list[tuple[object, ...]], sizes: tuple[int, ...] = STEP_ROWS
) -> list[tuple[str, list[tuple[object, ...]]]]:
    """`rows` as (statement, its parameter sets) pairs for `executemany`: whole statements of
    the largest of `sizes` first (`step_rows` of the connection), then smaller ones for the
    rest; the last size must be 1. Executed in that order, the rows are stored in their
    order."""
    steps: list[tuple[str, list[tuple[object, ...]]]] = []
    start = 0
    for size in sizes:
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
