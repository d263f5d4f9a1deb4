"""The forwarding side's capture buffer on real pipes: the start-up spill, its release, its
bound (drops counted), and exact counts of what a partial write leaves behind."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest

from km.capture.framing import Frame
from km.proxy.loop import Capture, set_nonblocking
from km.proxy.records import FRAME, HEADER_SIZE, RecordDecoder

F_SETPIPE_SZ = 1031


def frame(i: int, size: int = 1000) -> Frame:
    head = b"%d:" % i
    return Frame(head + b"x" * (size - len(head)), size, False, b"")


@pytest.fixture
def pipes() -> Iterator[tuple[int, int, int, int]]:
    """(record read end, record write end (non-blocking, 4 KiB), go read end, go write end)."""
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
    set_nonblocking(w)
    opened = [r, w, go_r, go_w]
    try:
        yield r, w, go_r, go_w
    finally:
        for fd in opened:
            try:
                os.close(fd)
            except OSError:
                pass


def drain(fd: int) -> bytes:
    set_nonblocking(fd)
    out = b""
    while True:
        try:
            piece = os.read(fd, 1 << 16)
        except BlockingIOError:
            return out
        if not piece:
            return out
        out += piece


def test_before_release_the_spill_takes_what_the_queue_alone_would_drop(
    pipes: tuple[int, int, int, int],
) -> None:
    _, w, _, go_w = pipes
    per = 1000 + HEADER_SIZE
    kept = {}
    for spill in (0, 100_000):
        capture = Capture(w, 10_000, spill_bytes=spill, spill_frames=1000, go_fd=go_w)
        assert not capture.released
        for i in range(200):
            capture.add(0, [frame(i)], 1, 2)
        kept[spill] = len(capture.buf) // per
        assert len(capture.buf) == kept[spill] * per <= 10_000 + spill
        assert capture.frames == kept[spill]
        assert capture.total_dropped == 200 - kept[spill], "every frame kept or counted"
        assert capture.room < per
    assert kept[0] <= 10 and kept[100_000] >= 100


def test_the_spill_takes_no_more_frames_than_its_frame_bound(
    pipes: tuple[int, int, int, int],
) -> None:
    _, w, _, go_w = pipes
    capture = Capture(w, 10_000, spill_bytes=1_000_000, spill_frames=500, go_fd=go_w)
    for i in range(2000):
        capture.add(0, [frame(i, 10)], 1, 2)
    # Small frames: the queue's bytes, and past them nothing once 500 frames wait.
    assert capture.frames == max(500, 10_000 // (10 + HEADER_SIZE) + 1)
    assert capture.total_dropped == 2000 - capture.frames
    assert capture.room == 0


def test_release_sends_one_byte_and_is_done_once(pipes: tuple[int, int, int, int]) -> None:
    _, w, go_r, go_w = pipes
    capture = Capture(w, 10_000, 100_000, 1000, go_w)
    capture.release()
    capture.release()
    assert capture.released
    assert os.read(go_r, 10) == b"\0"
    assert os.read(go_r, 10) == b"", "the go pipe is closed after the one byte"


def test_release_with_the_capture_process_gone_does_not_raise(
    pipes: tuple[int, int, int, int],
) -> None:
    _, w, go_r, go_w = pipes
    os.close(go_r)
    capture = Capture(w, 10_000, 100_000, 1000, go_w)
    capture.release()
    assert capture.released


def test_once_the_spill_ends_it_only_drains(pipes: tuple[int, int, int, int]) -> None:
    r, w, _, go_w = pipes
    capture = Capture(w, 10_000, spill_bytes=100_000, spill_frames=1000, go_fd=go_w)
    for i in range(80):
        capture.add(0, [frame(i)], 1, 2)
    capture.release()
    capture.end_spill()
    backlog = len(capture.buf)
    assert capture.limit == backlog > 10_000
    received = b""
    i = 80
    for _ in range(1000):  # bounded: the backlog is gone after ~30 rounds of 4 KiB
        if not capture.draining:
            break
        capture.flush()
        received += drain(r)
        assert capture.limit == max(10_000, len(capture.buf)) <= backlog
        for _ in range(3):  # new frames, while the backlog drains, only within the limit
            capture.add(0, [frame(i)], 1, 2)
            i += 1
        assert len(capture.buf) <= max(10_000 + 1000 + HEADER_SIZE, capture.limit)
        backlog = capture.limit
    assert capture.limit == 10_000 and not capture.draining
    assert capture.total_dropped > 0
    for _ in range(100):  # the rest, nothing added
        capture.flush()
        received += drain(r)
    records = RecordDecoder().feed(received)
    sent = [frame(k).data for k in range(80)]
    assert [rec.frame.data for rec in records[:80] if rec.frame] == sent


@pytest.mark.parametrize("size", [1, 100, 1000, 5000])
def test_frames_counts_exactly_what_never_went_whole(
    pipes: tuple[int, int, int, int], size: int
) -> None:
    r, w, _, go_w = pipes
    capture = Capture(w, 1 << 20, 0, 0, go_w)
    total = 60
    decoder = RecordDecoder()
    whole = 0
    for i in range(total):
        capture.add(i % 2, [frame(i, size + i)], 1, 2)
        if i % 7 == 0:
            capture.flush_drops(1, 2)
            capture.count_dropped(1, 1)
        capture.flush()  # a 4 KiB pipe: most writes end inside a record
        whole += sum(rec.type == FRAME for rec in decoder.feed(drain(r)))
        assert whole + capture.frames == i + 1
