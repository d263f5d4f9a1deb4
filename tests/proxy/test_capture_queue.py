"""The capture process's hand-off queue, in memory: whole batches of events and their room."""

from __future__ import annotations

from km.events import C2S, NOTIFICATION, Event
from km.proxy.capture_queue import FRAME_OVERHEAD, CaptureQueue


def events(n: int, size: int = 100) -> list[Event]:
    return [
        Event(f"ev-{i}", "s", "srv", C2S, i, i, NOTIFICATION, "m", None, size, b"x" * size)
        for i in range(n)
    ]


def test_a_batch_goes_in_whole_when_it_fits() -> None:
    queue = CaptureQueue(max_bytes=10 * (100 + FRAME_OVERHEAD), max_frames=8)
    lane = queue.lane("capture")
    assert queue.has_room_for(5, 500)
    lane.put_events(events(5))
    assert queue.wake.is_set()
    assert len(queue.items) == 5 and lane.put_frames == 5
    assert not queue.has_room_for(4, 400)  # 9 frames: past max_frames
    assert queue.has_room_for(3, 300)
    taken = queue.drain()
    assert [getattr(item[3], "id", None) for item in taken] == [f"ev-{i}" for i in range(5)]
    assert queue.has_room_for(8, 800)


def test_bytes_count_too() -> None:
    queue = CaptureQueue(max_bytes=3 * (100 + FRAME_OVERHEAD), max_frames=100)
    lane = queue.lane("capture")
    lane.put_events(events(2))
    assert queue.has_room_for(1, 100)
    assert not queue.has_room_for(2, 200)


def test_a_batch_bigger_than_the_queue_goes_into_an_empty_queue() -> None:
    queue = CaptureQueue(max_bytes=1000, max_frames=4)
    lane = queue.lane("capture")
    assert queue.has_room_for(10, 10_000)
    lane.put_events(events(10))
    assert not queue.has_room_for(1, 1)
    queue.drain()
    assert queue.has_room_for(10, 10_000)
    assert queue.dropped() == (0, 0)
