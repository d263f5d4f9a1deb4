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
    next_boundary,
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
    assert not decoder._chunks


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    parts, pos = [], 0
    for cut in cuts:
        parts.append(data[pos : pos + cut])
        pos += cut
    return [*parts, data[pos:]]


@given(st.lists(st.integers(min_value=1, max_value=5000), max_size=30))
def test_feed_frames_gives_the_frames_and_the_other_records_apart(cuts: list[int]) -> None:
    data, expected = sample_stream()
    decoder = RecordDecoder()
    frames: list[tuple[object, ...]] = []
    others = []
    for part in _split(data, cuts):
        got_frames, got_others = decoder.feed_frames(part)
        frames += [
            (FRAME, d, m, w, f.data, f.size, f.truncated, f.tail) for d, m, w, f in got_frames
        ]
        others += got_others
    assert frames == [e for e in expected if e[0] == FRAME]
    assert flatten(others) == [e for e in expected if e[0] != FRAME]
    assert decoder.pending == 0


def test_a_large_frame_in_many_reads_waits_whole() -> None:
    frame = Frame(b"y" * 3_000_000, 3_000_000, False, b"")
    data = encode_frame(1, 5, 6, frame) + encode_end(7, 8, 0)
    decoder = RecordDecoder()
    got = []
    for part in _split(data, [65536] * (len(data) // 65536)):
        got += decoder.feed(part)
        if not got:
            assert decoder.pending == sum(map(len, decoder._chunks))
    assert flatten(got) == [
        (FRAME, "s2c", 5, 6, frame.data, 3_000_000, False, b""),
        (END, "km", 7, 8, 0),
    ]


def stream_with_starts() -> tuple[bytes, list[tuple[int, int]]]:
    """Records of every type, and (offset, type) of each."""
    pieces = [
        (FRAME, encode_frame(0, 1, 2, Frame(b"a" * 10, 10, False, b""))),
        (DROPS, encode_drops(3, 4, 2, 50)),
        (FRAME, encode_frame(1, 5, 6, Frame(b"h" * 100, 5_000_000, True, b"t" * 300))),
        (END, encode_end(7, 8, 0)),
        (FRAME, encode_frame(0, 9, 10, Frame(b"z", 1, False, b""))),
    ]
    starts, offset = [], 0
    for type_, piece in pieces:
        starts.append((offset, type_))
        offset += len(piece)
    return b"".join(p for _, p in pieces), starts


def test_next_boundary_finds_where_a_write_leaves_off() -> None:
    data, starts = stream_with_starts()
    ends = [o for o, _ in starts[1:]] + [len(data)]
    for stop in range(1, len(data) + 1):
        i = next(k for k, end in enumerate(ends) if end >= stop)  # the record `stop` ends in
        cut = ends[i] > stop
        for k in range(i + 1):  # from any record start before it
            whole = sum(t == FRAME for _, t in starts[k : i + (0 if cut else 1)])
            expected = (ends[i], whole, cut and starts[i][1] == FRAME)
            assert next_boundary(data, starts[k][0], stop) == expected


def test_line_header_is_the_header_of_a_whole_frame() -> None:
    line = b'{"jsonrpc":"2.0","id":7,"result":{}}'
    frame = Frame(line, len(line), False, b"")
    assert encode_line_header(1, 5, 6, len(line)) == encode_header(1, 5, 6, frame)
    records = RecordDecoder().feed(encode_line_header(0, 5, 6, len(line)) + line)
    assert [(r.type, r.direction, r.frame.data if r.frame else None) for r in records] == [
        (FRAME, "c2s", line)
    ]
