"""Sans-IO: when the capture process may start, and when the start-up spill ends.

A client may send a burst the moment km starts, before the capture process has loaded its
modules and opened the spool (~0.1 s of CPU). So the capture process waits, and the forwarding
side holds the burst's records in a spill (see `Capture` in `km/proxy/loop.py`), until:
- forwarding leaves CPU to spare: it waited in `poll` `IDLE_SHARE` of a `WINDOW_S` window
  (idle, or a paced stream; a burst of large lines keeps it at 0.1-0.5 here); or
- half the spill's bytes or frames are used (a flood of small messages releases it at once:
  the capture process's pace, not forwarding's CPU, is then what counts); or
- `HOLD_S` has passed.
The spill lasts `START_S` (a capture process released early must not cut a burst short);
then it only drains.
"""

from __future__ import annotations

WINDOW_S = 0.05  # forwarding's idle share is judged over windows this long
WINDOW_MS = 50  # the same, as the longest `poll` while the capture process waits
IDLE_SHARE = 0.6  # waiting in `poll` this share of a window: the capture process may start
HOLD_S = 0.5  # the longest the capture process waits, however busy forwarding is
START_S = 1.0  # how long the spill takes records in

NOTHING = 0
RELEASE = 1  # let the capture process start
END_SPILL = 2  # from now on the spill only drains


class StartUp:
    __slots__ = (
        "blocked",
        "end_at",
        "held",
        "hold_until",
        "release_bytes",
        "release_frames",
        "window_at",
    )

    def __init__(self, now: float, max_bytes: int, spill_bytes: int, spill_frames: int) -> None:
        self.window_at = now
        self.blocked = 0.0  # seconds spent waiting in `poll` in the current window
        self.hold_until = now + HOLD_S
        self.end_at = now + START_S
        self.release_bytes = max_bytes + spill_bytes // 2
        self.release_frames = spill_frames // 2
        self.held = True  # the capture process waits: the loop must not sleep past WINDOW_MS

    def step(self, now: float, blocked: float, waiting: int, frames: int) -> int:
        """After each poll: `blocked` the seconds it waited; `waiting` the bytes and `frames`
        the frames of records not yet written to the capture process. Returns RELEASE, then
        END_SPILL, once each; after END_SPILL it need not be called again."""
        if self.held:
            self.blocked += blocked
            span = now - self.window_at
            idle = False
            if span >= WINDOW_S:
                idle = self.blocked >= IDLE_SHARE * span
                self.window_at = now
                self.blocked = 0.0
            if (
                idle
                or now >= self.hold_until
                or waiting >= self.release_bytes
                or frames >= self.release_frames
            ):
                self.held = False
                return RELEASE
        elif now >= self.end_at:
            return END_SPILL
        return NOTHING
