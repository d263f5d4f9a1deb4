"""Framed lines in, stored events out: classify, correlate, stamp. No I/O.

One `CapturePipeline` per proxied server, fed by the capture thread with the frames of both
directions in the order they were queued.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from km.capture.classify import classify
from km.capture.correlate import DEFAULT_MAX_PENDING, Correlator
from km.capture.framing import Frame
from km.capture.ids import uuid7
from km.events import DROPPED, KM, Event


class CapturePipeline:
    """Turns frames into `Event`s for one session. `new_id` makes event ids (for tests)."""

    __slots__ = ("_correlator", "_new_id", "_redact", "server", "session_id")

    def __init__(
        self,
        session_id: str,
        server: str,
        max_pending: int = DEFAULT_MAX_PENDING,
        new_id: Callable[[], str] = uuid7,
        redact: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """`redact` rewrites a payload before it is stored (classification and correlation
        read the frame as it crossed the wire; only what is kept is redacted)."""
        self.session_id = session_id
        self.server = server
        self._correlator = Correlator(max_pending)
        self._new_id = new_id
        self._redact = redact

    @property
    def evicted(self) -> int:
        """Pending requests forgotten unanswered because more than `max_pending` were waiting."""
        return self._correlator.evicted

    def process(self, direction: str, mono_ns: int, wall_ns: int, frame: Frame) -> Event:
        """The event for one frame. A response's `method` is its request's."""
        env = classify(frame.data, frame.size, frame.truncated, frame.tail)
        event_id = self._new_id()
        link = self._correlator.observe(direction, env, event_id, mono_ns)
        method = env.method
        if method is None:
            method = link.method
        return Event(  # positionally, in field order: this runs for every message
            event_id,
            self.session_id,
            self.server,
            direction,
            wall_ns,
            mono_ns,
            env.kind,
            method,
            env.rpc_id,
            frame.size,
            frame.data if self._redact is None else self._redact(frame.data),
            frame.truncated,
            link.link_id,
            link.latency_us,
        )

    def dropped(self, mono_ns: int, wall_ns: int, frames: int, nbytes: int) -> Event:
        """A km-internal record: `frames` frames of `nbytes` bytes were not captured since the
        previous such record (the counts are deltas)."""
        payload = orjson.dumps({"frames": frames, "bytes": nbytes})
        return Event(
            id=self._new_id(),
            session_id=self.session_id,
            server=self.server,
            direction=KM,
            ts_ns=wall_ns,
            mono_ns=mono_ns,
            kind=DROPPED,
            method=None,
            rpc_id=None,
            size=len(payload),
            payload=payload,
        )
