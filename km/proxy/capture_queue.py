"""The bounded hand-off, inside the capture process, from the thread that receives frames to
the spool writer thread.

Each producer owns one `Lane` and is the only writer of that lane's counters, so no lock is
taken: `Lane.put` is a few integer comparisons, one `deque.append` (atomic) and, when the
writer is asleep, one `Event.set`. Past `max_bytes` or `max_frames` waiting, `put` drops and
counts (`has_room` lets a producer that can afford to wait, wait instead). A queued item is a
raw `Frame` (the writer classifies it) or an already classified `Event` (`put_event`), so
classification can run on the producer's thread while SQLite, which releases the GIL, writes.
"""

from __future__ import annotations

import threading
from collections import deque

from km.capture.framing import Frame

# Bookkeeping per queued frame besides its bytes (tuple, Frame object, deque slot).
FRAME_OVERHEAD = 160

TYPE_CHECKING = False
if TYPE_CHECKING:
    from km.events import Event

# (direction, mono_ns, wall_ns, frame or event, bytes it holds)
QueuedFrame = tuple[str, int, int, "Frame | Event", int]


class Lane:
    """One direction's producer end. Only its relay thread calls `put`."""

    __slots__ = (
        "_queue",
        "direction",
        "dropped_bytes",
        "dropped_frames",
        "put_bytes",
        "put_frames",
    )

    def __init__(self, queue: CaptureQueue, direction: str) -> None:
        self._queue = queue
        self.direction = direction
        self.put_bytes = 0
        self.put_frames = 0
        self.dropped_frames = 0
        self.dropped_bytes = 0

    def put(self, mono_ns: int, wall_ns: int, frame: Frame) -> bool:
        """Queue a frame for capture; False (and counted) when the writer is too far behind."""
        q = self._queue
        cost = len(frame.data) + len(frame.tail) + FRAME_OVERHEAD
        waiting = q.lanes_put_bytes() - q.taken_bytes
        # A frame bigger than the whole queue (a definitions result kept whole) goes when the
        # queue is empty; anything past `max_bytes` on top of waiting frames is dropped.
        if (waiting and waiting + cost > q.max_bytes) or len(q.items) >= q.max_frames:
            self.dropped_frames += 1
            self.dropped_bytes += frame.size
            return False
        self.put_bytes += cost
        self.put_frames += 1
        q.items.append((self.direction, mono_ns, wall_ns, frame, cost))
        if not q.wake.is_set():
            q.wake.set()
        return True

    def put_event(self, event: Event) -> None:
        """Queue an already classified event. The caller checked `has_room` (it waits rather
        than drops), so this never drops."""
        q = self._queue
        cost = len(event.payload) + FRAME_OVERHEAD
        self.put_bytes += cost
        self.put_frames += 1
        q.items.append((event.direction, event.mono_ns, event.ts_ns, event, cost))
        if not q.wake.is_set():
            q.wake.set()

    def put_events(self, events: list[Event]) -> None:
        """`put_event` for many events (one read's worth): the caller checked `has_room_for`."""
        q = self._queue
        items = [
            (e.direction, e.mono_ns, e.ts_ns, e, len(e.payload) + FRAME_OVERHEAD) for e in events
        ]
        self.put_bytes += sum([item[4] for item in items])
        self.put_frames += len(items)
        q.items.extend(items)
        if not q.wake.is_set():
            q.wake.set()


class CaptureQueue:
    """Frames waiting for the spool writer. Producers: two lanes. Consumer: one writer thread."""

    __slots__ = ("items", "lanes", "max_bytes", "max_frames", "taken_bytes", "wake")

    def __init__(self, max_bytes: int, max_frames: int) -> None:
        self.items: deque[QueuedFrame] = deque()
        self.wake = threading.Event()
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.taken_bytes = 0  # written by the consumer only
        self.lanes: list[Lane] = []

    def lane(self, direction: str) -> Lane:
        lane = Lane(self, direction)
        self.lanes.append(lane)
        return lane

    def has_room(self) -> bool:
        return (
            self.lanes_put_bytes() - self.taken_bytes < self.max_bytes
            and len(self.items) < self.max_frames
        )

    def has_room_for(self, frames: int, nbytes: int) -> bool:
        """Whether `frames` more items holding `nbytes` fit; a batch bigger than the whole
        queue fits an empty queue (as a frame bigger than the queue does in `Lane.put`)."""
        waiting = self.lanes_put_bytes() - self.taken_bytes
        if not waiting and not self.items:
            return True
        return (
            waiting + nbytes + frames * FRAME_OVERHEAD <= self.max_bytes
            and len(self.items) + frames <= self.max_frames
        )

    def lanes_put_bytes(self) -> int:
        return sum(lane.put_bytes for lane in self.lanes)

    def wait(self, timeout: float | None) -> None:
        """Consumer: sleep until a producer queues something (or `timeout` passes)."""
        self.wake.wait(timeout)
        self.wake.clear()

    def drain(self, limit: int = 1 << 30) -> list[QueuedFrame]:
        """Consumer: take up to `limit` queued frames, oldest first."""
        out: list[QueuedFrame] = []
        items = self.items
        taken = 0
        while items and len(out) < limit:
            item = items.popleft()
            taken += item[4]
            out.append(item)
        self.taken_bytes += taken
        return out

    def dropped(self) -> tuple[int, int]:
        """(frames, bytes) dropped so far, over all lanes."""
        return (
            sum(lane.dropped_frames for lane in self.lanes),
            sum(lane.dropped_bytes for lane in self.lanes),
        )
