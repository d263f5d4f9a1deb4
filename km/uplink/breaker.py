"""A circuit breaker (sans-IO, injectable clock): stop hammering an API that keeps failing.

- CLOSED: requests go. `failure_threshold` consecutive failures open the circuit.
- OPEN: no request goes until `open_s` has passed (or longer, when the caller asks for it:
  a `Retry-After`); then the breaker is HALF_OPEN.
- HALF_OPEN: one probe request goes. Its success closes the circuit; its failure opens it again
  for `open_s`, doubled each time the probe fails in a row, up to `max_open_s`.

Only failures that say the API is unhealthy count (connection errors, timeouts, 5xx); a 429 or
a rejected event does not. Opening never drops anything: events wait in the spool.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    __slots__ = (
        "_clock",
        "_open_until",
        "_probing",
        "_reopened",
        "_state",
        "failure_threshold",
        "failures",
        "max_open_s",
        "open_s",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        open_s: float = 30.0,
        max_open_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or open_s <= 0 or max_open_s < open_s:
            raise ValueError(
                f"need failure_threshold >= 1 and 0 < open_s <= max_open_s, got "
                f"{failure_threshold}, {open_s}, {max_open_s}"
            )
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.max_open_s = max_open_s
        self._clock = clock
        self._state = CLOSED
        self.failures = 0  # consecutive
        self._open_until = 0.0
        self._probing = False  # a half-open probe is out
        self._reopened = 0  # probes that failed in a row

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() >= self._open_until:
            return HALF_OPEN
        return self._state

    @property
    def open_until(self) -> float | None:
        """When an open circuit lets a probe through (clock seconds); None unless open."""
        return self._open_until if self.state == OPEN else None

    def wait_s(self) -> float:
        """Seconds before `allow()` can say yes (0.0: now; inf: wait for the probe's result)."""
        state = self.state
        if state == OPEN:
            return max(0.0, self._open_until - self._clock())
        if state == HALF_OPEN and self._probing:
            return float("inf")
        return 0.0

    def allow(self) -> bool:
        """Whether a request may go now. In HALF_OPEN the first caller gets the one probe."""
        state = self.state
        if state == CLOSED:
            return True
        if state == OPEN:
            return False
        if self._probing:
            return False
        self._state = HALF_OPEN
        self._probing = True
        return True

    def success(self) -> None:
        self._state = CLOSED
        self.failures = 0
        self._probing = False
        self._reopened = 0

    def failure(self, hold_s: float = 0.0) -> None:
        """Record a failed request; `hold_s` keeps an opening circuit open at least that long."""
        self.failures += 1
        was_probe = self._probing
        self._probing = False
        if was_probe or self.state == HALF_OPEN:
            self._reopened += 1
            self._open(hold_s)
        elif self._state == CLOSED and self.failures >= self.failure_threshold:
            self._open(hold_s)
        elif self._state == OPEN:  # a request that was already out when the circuit opened
            self._open_until = max(self._open_until, self._clock() + hold_s)

    def neutral(self) -> None:
        """A probe came back with neither verdict (a 429, a pause): let another probe go."""
        self._probing = False

    def _open(self, hold_s: float) -> None:
        duration = min(self.max_open_s, self.open_s * 2 ** min(self._reopened, 32))
        self._state = OPEN
        self._open_until = self._clock() + max(duration, hold_s)
