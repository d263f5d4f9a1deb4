"""The `km-uplink-busy` mode's surroundings: a local `km serve` (SQLite store, its own process)
and, for every run, a spool already holding `PENDING` undelivered events, so that km's
background uplink (in its capture process) drains for the whole measurement.

Between turns the server is frozen (SIGSTOP): the uplink then waits on its request and sends
nothing, so the other modes' blocks run on a quiet machine and only the loaded modes' blocks
carry the uplink's load (its claims, encoding, gzip and HTTP, plus the local server's ingest,
which a remote API would not put on this machine: a worst case). The loaded modes are
`km-uplink-busy` and the `DRAINED` relays timed while the same uplink drains (socat,
python-floor, km without capture, km with capture but no uplink of its own): the like-for-like
relays to compare the busy km with (a machine this busy slows every relay's wake-ups).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time

from benchmarks.serve_process import ServeProcess

PENDING = 200_000  # the backlog each run starts with (drains at ~10-20k events/s here)
BUSY_WAIT_S = 30.0  # the capture process's uplink starts after its 2 s delay; first batch in
STATE_SENT = 2  # km.events.SENT
BUSY = "km-uplink-busy"
# Other relays timed while BUSY's uplink drains.
DRAINED = ("socat-drain", "floor-drain", "nocapture-drain", "capture-drain")
# The local server runs during these modes' turns only.
LOADED = (BUSY, *DRAINED)


class BusyUplink:
    """Started on first use; `close()` stops the server."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self._server: ServeProcess | None = None
        self._key = ""
        self._template = os.path.join(workdir, "busy-template.db")
        self._frozen = False

    def env(self) -> dict[str, str]:
        """KM_API_URL and KM_API_KEY of the running local server."""
        if self._server is None:
            server = ServeProcess(f"sqlite://{os.path.join(self.workdir, 'busy-server.db')}")
            self._key = server.create_key()
            server.start()
            self._server = server
        return {"KM_API_URL": self._server.url, "KM_API_KEY": self._key}

    def spool(self, path: str) -> int:
        """Write a copy of the pre-filled spool at `path`; the number of events in it."""
        if not os.path.exists(self._template):
            from benchmarks.test_bench_uplink import fill_spool

            fill_spool(self._template, PENDING)
        shutil.copyfile(self._template, path)
        return PENDING

    def turn(self, busy: bool) -> None:
        """Let the server run (the uplink drains) or freeze it (the uplink waits)."""
        if self._server is None or self._server.proc is None or busy != self._frozen:
            return
        os.kill(self._server.proc.pid, signal.SIGCONT if busy else signal.SIGSTOP)
        self._frozen = not busy

    def close(self) -> None:
        if self._server is not None:
            self.turn(True)
            self._server.stop()
            self._server = None


def sent(spool: str) -> int:
    """Events the uplink has delivered from `spool` so far: those marked sent, plus the sent
    ones already deleted for their age (the pre-filled events are old)."""
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10.0)
    try:
        (n,) = db.execute("SELECT count(*) FROM events WHERE state = ?", (STATE_SENT,)).fetchone()
        expired = db.execute(
            "SELECT value FROM spool_stats WHERE key = 'expired_events'"
        ).fetchone()
    finally:
        db.close()
    return int(n) + (int(expired[0]) if expired else 0)


def wait_draining(spool: str, timeout: float = BUSY_WAIT_S) -> None:
    """Return once the uplink has delivered its first batch (it drains from then on)."""
    deadline = time.monotonic() + timeout
    while sent(spool) == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"km's background uplink sent nothing within {timeout} s")
        time.sleep(0.05)
