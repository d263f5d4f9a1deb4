"""A real km-like writer process for the concurrency tests.

    python -m tests.spool.appender PATH NAME BATCHES BATCH_SIZE PAYLOAD_BYTES

Opens the spool at PATH, records a session NAME, then appends BATCHES batches of BATCH_SIZE
events with ids `NAME-<batch:06d>-<i:04d>`, printing each batch's number on stdout once it is
committed. Exits 1 with the error on stderr if anything fails.
"""

from __future__ import annotations

import sys

from km.events import Event
from km.spool.store import SpoolStore
from tests.spool.helpers import make_event, make_session

NO_CAP = 1 << 40


def batch_events(name: str, batch: int, size: int, payload_bytes: int) -> list[Event]:
    payload = bytes([batch % 251]) * payload_bytes
    events = []
    for i in range(size):
        e = make_event(batch * size + i, session_id=name, server=name, payload=payload)
        events.append(_with_id(e, f"{name}-{batch:06d}-{i:04d}"))
    return events


def _with_id(e: Event, event_id: str) -> Event:
    return Event(
        event_id, e.session_id, e.server, e.direction, e.ts_ns, e.mono_ns, e.kind, e.method,
        e.rpc_id, e.size, e.payload,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    path, name = argv[0], argv[1]
    batches, size, payload_bytes = (int(a) for a in argv[2:5])
    store = SpoolStore.open(path, NO_CAP)
    try:
        store.begin_session(make_session(name, name))
        for batch in range(batches):
            store.append(batch_events(name, batch, size, payload_bytes))
            sys.stdout.write(f"{batch}\n")
            sys.stdout.flush()
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
