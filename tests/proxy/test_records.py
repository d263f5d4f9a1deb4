"""The record codec between the forwarding loop and the capture process (sans-IO)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from km.capture.framing import Frame
from km.proxy.records import (
    DROPS,
    END,
    FRAME,
    RecordDecoder,
    encode_drops,
    encode_end,
    encode_frame,
    encode_header,
    encode_line_header,
)


def sample_stream() -> tuple[bytes, list[tuple[object, ...]]]:
    frames = [
        (0, Frame(b'{"jsonrpc":"2.0","id":1,"method":"ping"}', 40, False, b"")),
        (1, Frame(b"\xff\xfe invalid", 11, False, b"")),
        (1, Frame(b"h" * 100, 5_000_000, True, b"t" * 4096)),
    ]
    data = b""
    expected: list[tuple[object, ...]] = []
    for i, (direction, frame) in enumerate(frames):
        data += encode_frame(direction, 1000 + i, 2000 + i, frame)
        expected.append(
            (
                FRAME,
                ("c2s", "s2c")[direction],
                1000 + i,
                2000 + i,
                frame.data,
                frame.size,
                frame.truncated,
                frame.tail,
            )
        )
    data += encode_drops(7, 8, 3, 999)
    expected.append((DROPS, "km", 7, 8, 3, 999))
    data += encode_end(9, 10, 137)
    expected.append((END, "km", 9, 10, 137))
    return data, expected


def flatten(records: list) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    out: list[tuple[object, ...]] = []
    for r in records:
        if r.type == FRAME:
            f = r.frame
            out.append(
                (FRAME, r.direction, r.mono_ns, r.wall_ns, f.data, f.size, f.truncated, f.tail)
            )
        elif r.type == DROPS:
            out.append((DROPS, r.direction, r.mono_ns, r.wall_ns, r.count, r.nbytes))
        else:
            out.append((END, r.direction, r.mono_ns, r.wall_ns, r.count))
    return out


def test_whole_stream_decodes_exactly() -> None:
    data, expected = sample_stream()
    assert flatten(RecordDecoder().feed(data)) == expected


def test_byte_by_byte() -> None:
    data, expected = sample_stream()
    decoder = RecordDecoder()
    records = []
    for i in range(len(data)):
        records += decoder.feed(data[i : i + 1])
    assert flatten(records) == expected
    assert decoder.pending == 0


@given(st.lists(st.integers(min_value=1, max_value=5000), max_size=30))
def test_random_splits(cuts: list[int]) -> None:
    data, expected = sample_stream()
    decoder = RecordDecoder()
    records = []
    pos = 0
    for cut in cuts:
        records += decoder.feed(data[pos : pos + cut])
        pos += cut
    records += decoder.feed(data[pos:])
    assert flatten(records) == expected


def test_long_streams_do_not_keep_consumed_bytes() -> None:
    decoder = RecordDecoder()
    frame = Frame(b"x" * 1000, 1000, False, b"")
    rng = random.Random(5)
    total = 0
    for _ in range(2000):
        total += len(decoder.feed(encode_frame(rng.randrange(2), 1, 2, frame)))
    assert total == 2000
    assert decoder.pending == 0
    assert len(decoder._buf) < 200_000


def test_line_header_is_the_header_of_a_whole_frame() -> None:
    line = b'{"jsonrpc":"2.0","id":7,"result":{}}'
    frame = Frame(line, len(line), False, b"")
    assert encode_line_header(1, 5, 6, len(line)) == encode_header(1, 5, 6, frame)
    records = RecordDecoder().feed(encode_line_header(0, 5, 6, len(line)) + line)
    assert [(r.type, r.direction, r.frame.data if r.frame else None) for r in records] == [
        (FRAME, "c2s", line)
    ]
