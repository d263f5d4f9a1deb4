"""One log line per cause, not per request (sans-IO: the caller passes the clock).

A store that goes away makes every request fail the same way; logging each of them would bury
the one line that matters. `LogOnce.check(cause, now)` says whether to log: the first time a
cause is seen, then again at most once per `interval_s`, with the number of repeats that were
not logged in between.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

REPEAT_INTERVAL_S = 300.0  # the same cause is logged again at most this often
MAX_CAUSES = 256  # causes remembered; past that the least recent is forgotten


class LogOnce:
    def __init__(self, interval_s: float = REPEAT_INTERVAL_S, max_causes: int = MAX_CAUSES):
        self._interval_s = interval_s
        self._max_causes = max_causes
        self._seen: OrderedDict[Hashable, list[float]] = OrderedDict()  # cause -> [at, repeats]

    def check(self, cause: Hashable, now: float) -> int | None:
        """None: do not log. Otherwise log, mentioning the returned count of repeats that were
        not logged since the last time (0 the first time)."""
        entry = self._seen.get(cause)
        if entry is None:
            self._seen[cause] = [now, 0.0]
            if len(self._seen) > self._max_causes:
                self._seen.popitem(last=False)
            return 0
        self._seen.move_to_end(cause)
        if now - entry[0] < self._interval_s:
            entry[1] += 1
            return None
        repeats = int(entry[1])
        entry[0], entry[1] = now, 0.0
        return repeats
