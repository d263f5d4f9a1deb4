"""Which connections `km serve` keeps (sans-IO: the caller passes the clock and closes).

Every open connection costs a file descriptor, and a server out of descriptors cannot accept
the request that matters. So connections are capped below the open-file limit, and each is in
one of three states:

- `HEADERS`: a request is due (the connection is new, or bytes of a request came) but its
  headers are not complete: closed after `header_timeout_s`, however slowly bytes trickle in;
- `IDLE`: between requests on a kept-alive connection: closed after `idle_timeout_s`;
- `BUSY`: a handler is running: never timed out here (the body read has its own timeout).

At the cap, a new connection evicts the quiet (not busy) connection that has been quiet
longest: a thousand connections that never finish their headers cannot keep out a real
request. When every connection is busy, the new one is refused.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

HEADERS = "headers"
IDLE = "idle"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float
    idle_timeout_s: float

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.header_timeout_s <= 0 or self.idle_timeout_s <= 0:
            raise ValueError(f"connection limits must be positive, got {self}")


class ConnectionTable(Generic[K]):
    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        # Quiet connections in the order they became quiet: the first is the longest quiet.
        self._quiet: OrderedDict[K, tuple[str, float]] = OrderedDict()
        self._busy: set[K] = set()
        self.evicted = 0  # connections closed to make room, since start
        self.refused = 0  # connections refused because every slot was busy
        self.timed_out = 0

    def __len__(self) -> int:
        return len(self._quiet) + len(self._busy)

    def opened(self, conn: K, now: float) -> list[K]:
        """Admit `conn`; return the connections to close now (which may include `conn`)."""
        victims: list[K] = []
        while len(self) >= self.limits.max_connections:
            if not self._quiet:
                self.refused += 1
                return [conn]
            victim, _ = self._quiet.popitem(last=False)
            victims.append(victim)
            self.evicted += 1
        self._quiet[conn] = (HEADERS, now)
        return victims

    def data(self, conn: K, now: float) -> None:
        """Bytes arrived: an idle connection starts its next request's header clock."""
        entry = self._quiet.get(conn)
        if entry is not None and entry[0] == IDLE:
            del self._quiet[conn]
            self._quiet[conn] = (HEADERS, now)

    def busy(self, conn: K) -> None:
        """A request's headers are complete and its handler runs."""
        if self._quiet.pop(conn, None) is not None:
            self._busy.add(conn)

    def idle(self, conn: K, now: float) -> None:
        """The handler finished: the connection waits for its next request."""
        if conn in self._busy:
            self._busy.discard(conn)
            self._quiet[conn] = (IDLE, now)

    def closed(self, conn: K) -> None:
        self._quiet.pop(conn, None)
        self._busy.discard(conn)

    def expired(self, now: float) -> list[K]:
        """Quiet connections past their state's timeout, removed from the table."""
        shortest = min(self.limits.header_timeout_s, self.limits.idle_timeout_s)
        out: list[K] = []
        for conn, (state, since) in self._quiet.items():
            if now - since < shortest:
                break  # everything after became quiet later still
            timeout = (
                self.limits.header_timeout_s if state == HEADERS else self.limits.idle_timeout_s
            )
            if now - since >= timeout:
                out.append(conn)
        for conn in out:
            del self._quiet[conn]
        self.timed_out += len(out)
        return out
