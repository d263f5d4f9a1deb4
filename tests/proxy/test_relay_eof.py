"""The forwarding loop at a source's EOF, on real pipes: reads kept for later framing (small
ones, `DEFER_READ_MAX`) are framed before the source's unterminated last line is taken, so a
line split across a framed read and a kept one stays one frame."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator

import pytest

from km.capture.framing import LineFramer
from km.proxy.loop import DEFER_READ_MAX, Capture, Direction, Relay, set_nonblocking
from km.proxy.records import RecordDecoder


def line(i: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"p":"%s"}}\n' % (
        i,
        b"x" * 100,
    )


@pytest.fixture
def fds() -> Iterator[dict[str, int]]:
    """Client -> km, km -> server, server -> km, km -> client and record pipes."""
    names = ("client", "server_in", "server_out", "client_out", "records")
    opened: dict[str, int] = {}
    for name in names:
        opened[name + "_r"], opened[name + "_w"] = os.pipe()
    for name in ("server_in_w", "client_out_w", "records_w"):
        set_nonblocking(opened[name])
    try:
        yield opened
    finally:
        for fd in opened.values():
            try:
                os.close(fd)
            except OSError:
                pass


def serve(relay: Relay, fd: int) -> None:
    assert relay.handle(fd, select.POLLIN)


def test_a_line_split_across_a_framed_read_and_a_kept_one_is_one_frame_at_eof(
    fds: dict[str, int],
) -> None:
    c2s = Direction(0, "c2s", fds["client_r"], fds["server_in_w"], LineFramer(1 << 20))
    s2c = Direction(1, "s2c", fds["server_out_r"], fds["client_out_w"], LineFramer(1 << 20))
    relay = Relay((c2s, s2c), Capture(fds["records_w"], 1 << 20))
    lines = [line(i) for i in range(200)]
    data = b"".join(lines)
    cut = len(b"".join(lines[:150])) + 60  # in the middle of line 150
    assert cut > DEFER_READ_MAX and len(data) - cut <= DEFER_READ_MAX
    os.write(fds["client_w"], data[:cut])
    serve(relay, fds["client_r"])  # a large read: framed at once, line 150's head carried
    os.write(fds["client_w"], data[cut:])
    serve(relay, fds["client_r"])  # a small read: kept for later framing
    assert relay.deferred_reads
    os.close(fds["client_w"])
    serve(relay, fds["client_r"])  # EOF
    relay.flush_capture()
    assert os.read(fds["server_in_r"], 1 << 20) == data  # forwarded as it came
    frames, others = RecordDecoder().feed_frames(os.read(fds["records_r"], 1 << 20))
    assert not others
    assert [frame.data + b"\n" for _, _, _, frame in frames] == lines
