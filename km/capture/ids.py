"""Time-ordered identifiers: RFC 9562 UUIDv7, written out by hand (the stdlib has it from 3.14).

Layout (RFC 9562 section 5.7): 48 bits of Unix time in milliseconds, the version (7), 12 bits
`rand_a`, the variant (0b10), 62 bits `rand_b`. `rand_a` is used as a counter (the RFC's
method 1, "fixed bit-length dedicated counter"): each new millisecond seeds it with a random
value below 2048, and ids made within the same millisecond increment it. If it would pass 4095,
the timestamp is borrowed from the next millisecond (the RFC allows running ahead of the clock;
the real clock catches up). A clock that steps backwards is ignored the same way. So ids from
one generator are strictly increasing, as text too, across threads (the state is behind a
lock), and unique within the process whatever the random bits. `rand_b` is fresh
cryptographically random bits for every id (`os.urandom`, read 4 KiB at a time), which keeps ids
unique across processes; a forked child discards the bytes it inherited.

This runs once per captured message, so the timestamp's text is kept between calls and the rest
is made from look-up tables and `bytes.hex` rather than integer formatting.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

_COUNTER_MAX = 0xFFF  # 12-bit rand_a
_LOW_48 = (1 << 48) - 1
_POOL_BYTES = 4096  # one getrandom() call per ~400 ids


class _UrandomPool:
    """`os.urandom(n)` served from a 4 KiB buffer. Not thread-safe: call it under a lock."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            self._buf = os.urandom(max(_POOL_BYTES, n))
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]

    def discard(self) -> None:
        self._buf = b""
        self._pos = 0


class Uuid7Generator:
    """A source of monotonic UUIDv7 strings. `clock_ns` and `random_bytes` exist for tests."""

    __slots__ = ("_clock_ns", "_counter", "_last_ms", "_lock", "_prefix", "_random_bytes")

    def __init__(
        self,
        clock_ns: Callable[[], int] = time.time_ns,
        random_bytes: Callable[[int], bytes] | None = None,
    ) -> None:
        self._clock_ns = clock_ns
        self._random_bytes = random_bytes if random_bytes is not None else _UrandomPool()
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0
        self._prefix = ""  # "tttttttt-tttt-" for _last_ms

    def __call__(self) -> str:
        with self._lock:
            rand_b = self._random_bytes(8)
            now = self._clock_ns() // 1_000_000
            if now > self._last_ms:
                self._last_ms = now
                self._counter = counter = self._seed()
                self._prefix = prefix = _prefix(now)
            else:
                counter = self._counter + 1
                if counter > _COUNTER_MAX:
                    self._last_ms += 1  # borrow the next millisecond
                    counter = self._seed()
                    self._prefix = _prefix(self._last_ms)
                self._counter = counter
                prefix = self._prefix
        # rand_b: the 8 random bytes as "xxxx-xxxxxxxxxxxx", the first hex digit's top two
        # bits replaced by the variant 0b10.
        text = rand_b.hex("-", 6)
        return f"{prefix}{_COUNTER_TEXT[counter]}{_VARIANT_DIGIT[text[0]]}{text[1:]}"

    def many(self, n: int) -> list[str]:
        """`n` new ids, in increasing order: what `n` calls would make, for one lock, one clock
        read and one random read (the capture process names one read's frames at once)."""
        if n <= 0:
            return []
        out: list[str] = []
        append = out.append
        counters, variants = _COUNTER_TEXT, _VARIANT_DIGIT
        with self._lock:
            rand_b = self._random_bytes(8 * n).hex()
            now = self._clock_ns() // 1_000_000
            if now > self._last_ms:
                self._last_ms = now
                counter = self._seed() - 1  # the first id below takes the seed itself
                self._prefix = _prefix(now)
            else:
                counter = self._counter
            prefix = self._prefix
            for i in range(0, 16 * n, 16):
                counter += 1
                if counter > _COUNTER_MAX:
                    self._last_ms += 1  # borrow the next millisecond
                    counter = self._seed()
                    self._prefix = prefix = _prefix(self._last_ms)
                text = rand_b[i : i + 16]
                append(f"{prefix}{counters[counter]}{variants[text[0]]}{text[1:4]}-{text[4:]}")
            self._counter = counter
        return out

    def _seed(self) -> int:
        pair = self._random_bytes(2)
        return (pair[0] << 8 | pair[1]) >> 5  # 11 random bits

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork
        if isinstance(self._random_bytes, _UrandomPool):
            self._random_bytes.discard()  # never reuse the parent's random bytes


def _prefix(ms: int) -> str:
    ms &= _LOW_48
    return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-"


# "7" (the version) and the counter, for every counter value: formatting costs more than a look-up.
_COUNTER_TEXT = tuple(f"7{n:03x}-" for n in range(_COUNTER_MAX + 1))
_VARIANT_DIGIT = {f"{n:x}": "89ab"[n & 3] for n in range(16)}

_default = Uuid7Generator()
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_default._after_fork_in_child)

# A new UUIDv7 string, greater than every one this process made before.
uuid7: Callable[[], str] = _default


def new_session_id() -> str:
    """The id of one km run (a UUIDv7, so sessions sort by start time)."""
    return uuid7()
