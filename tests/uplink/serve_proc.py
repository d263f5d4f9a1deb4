"""`km serve` as a real process for fault tests: started on a fixed loopback port (so a restart
comes back where the uplink looks), killed with SIGKILL, and read back through its store.

The store is an SQLite file or a PostgreSQL schema of its own (`pg_database`); `stored_count`
is a cheap poll of the events table, `read_back` reads every event through the store itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from tests.conftest import KM, ProcessReaper

START_S = 60.0  # import, migrate, bind, on a busy 2-core machine
KEY_S = 60.0  # `km serve keys create`
STOP_S = 15.0


def serve_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env["KM_CONFIG"] = str(tmp_path / "no-config.toml")  # never the developer's own config
    return env


class KmServe:
    """`km serve --port PORT --database-url URL`, with no rate limit; stderr to `log`."""

    def __init__(self, reaper: ProcessReaper, database_url: str, port: int, log: Path) -> None:
        self.reaper = reaper
        self.database_url = database_url
        self.port = port
        self.log = log
        self.env = serve_env(log.parent)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def create_key(self, account: str = "test") -> str:
        result = subprocess.run(
            [*KM, "serve", "keys", "create", "--account", account,
             "--database-url", self.database_url],
            capture_output=True, env=self.env, timeout=KEY_S, check=True,
        )  # fmt: skip
        key = result.stdout.decode().strip().splitlines()[-1].strip()
        assert key.startswith("km_live_"), result.stderr
        return key

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = self.reaper.popen(
                [*KM, "serve", "--port", str(self.port), "--database-url", self.database_url,
                 "--rate", "1000000", "--burst", "1000000"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=self.env,
            )  # fmt: skip
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"km serve exited: {self.log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"km serve not answering within {START_S} s")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(STOP_S) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(STOP_S)


def unread_request(port: int) -> bool:
    """True when a connection accepted on `port` holds bytes its server has not read yet (a
    request sent to a stopped server): /proc/net/tcp, IPv4 loopback."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            rx_queue = int(fields[4].split(":")[1], 16)
            if local_port == port and fields[3] == "01" and rx_queue > 0:
                return True
    return False


def poll_until(predicate: Any, timeout: float) -> bool:
    """Poll `predicate` until true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# -- the store ---------------------------------------------------------------------------------


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'server.db'}"  # sqlite:///abs/path


@contextmanager
def pg_database() -> Iterator[str]:
    """A database URL for a fresh PostgreSQL schema of its own, dropped on exit (skips the
    test when PostgreSQL cannot be reached)."""
    from tests.server.conftest import create_pg_schema, drop_pg_schema, pg_url_in

    schema = asyncio.run(create_pg_schema())
    try:
        yield pg_url_in(schema)
    finally:
        asyncio.run(drop_pg_schema(schema))


def stored_count(database_url: str) -> int:
    """Rows in the server's events table now (0 before it exists; -1 when PostgreSQL cannot
    be reached this moment, so a poll goes on)."""
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://")
        if not os.path.exists(path):
            return 0
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            (n,) = db.execute("SELECT count(*) FROM events").fetchone()
        except sqlite3.OperationalError:
            return 0
        finally:
            db.close()
        return int(n)

    async def count() -> int:
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events"))
        except asyncpg.UndefinedTableError:
            return 0
        finally:
            await conn.close()

    try:
        return asyncio.run(count())
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError):
        return -1  # PostgreSQL restarting (the machine's cluster is shared): unknown


def read_back(database_url: str, account: str = "test") -> tuple[dict[str, int], dict[str, bytes]]:
    """Every event `account` holds, through the store: (id -> copies, id -> payload)."""
    from km.server.stores import open_store
    from km.server.stores.base import EventFilter

    async def read() -> list[Any]:
        store = await open_store(database_url)
        try:
            (acct,) = [a for a in await store.list_accounts() if a.name == account]
            items: list[Any] = []
            cursor = None
            while True:
                page = await store.list_events(acct.id, EventFilter(), cursor, 1000)
                items += page.items
                cursor = page.next_cursor
                if cursor is None:
                    return items
        finally:
            await store.close()

    events = asyncio.run(read())
    return dict(Counter(e.id for e in events)), {e.id: e.payload for e in events}
