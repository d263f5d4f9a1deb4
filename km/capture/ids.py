"""Time-ordered identifiers: RFC 9562 UUIDv7, written out by hand (the stdlib has it from 3.14).

Layout (RFC 9562 section 5.7): 48 bits of Unix time in milliseconds, the version (7), 12 bits
`rand_a`, the variant (0b10), 62 bits `rand_b`. `rand_a` is used as a counter (the RFC's
method 1, "fixed bit-length dedicated counter"): each new millisecond seeds it with a random
value below 2048, and ids made within the same millisecond increment it. If it would pass 4095,
the timestamp is borrowed from the next millisecond (the RFC allows running ahead of the clock;
the real clock catches up). A clock that steps backwards is ignored the same way. So ids from
one generator are strictly increasing, as text too, across threads (the state is behind a
lock). `rand_b` is fresh from `os.urandom` for every id, which keeps ids unique across processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

_COUNTER_MAX = 0xFFF  # 12-bit rand_a
_SEED_SHIFT = 69  # top 11 of 80 random bits seed a new millisecond's counter (< 2048: >= 2048 ids
# fit in one millisecond before the timestamp has to be borrowed)
_RAND_B_MASK = (1 << 62) - 1
_TS_MASK = (1 << 48) - 1
_VERSION_BITS = 0x7 << 76
_VARIANT_BITS = 0b10 << 62


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Uuid7Generator:
    """A source of monotonic UUIDv7 strings. `clock_ms` and `random_bytes` exist for tests."""

    __slots__ = ("_clock_ms", "_counter", "_last_ms", "_lock", "_random_bytes")

    def __init__(
        self,
        clock_ms: Callable[[], int] = _wall_ms,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock_ms = clock_ms
        self._random_bytes = random_bytes
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> str:
        rand = int.from_bytes(self._random_bytes(10), "big")
        with self._lock:
            now = self._clock_ms()
            if now > self._last_ms:
                self._last_ms = now
                self._counter = rand >> _SEED_SHIFT
            else:
                counter = self._counter + 1
                if counter > _COUNTER_MAX:
                    self._last_ms += 1  # borrow the next millisecond
                    counter = rand >> _SEED_SHIFT
                self._counter = counter
            ms = self._last_ms
            counter = self._counter
        value = (
            (ms & _TS_MASK) << 80
            | _VERSION_BITS
            | counter << 64
            | _VARIANT_BITS
            | (rand & _RAND_B_MASK)
        )
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# A new UUIDv7 string, greater than every one this process made before.
uuid7: Callable[[], str] = Uuid7Generator()


def new_session_id() -> str:
    """The id of one km run (a UUIDv7, so sessions sort by start time)."""
    return uuid7()
