"""LineFramer: every input whole, one byte at a time and split at random; truncation; big frames."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from km.capture import framing
from km.capture.framing import Frame, LineFramer

Expected = tuple[bytes, int, bool, bytes]


def expected_frames(data: bytes, cap: int) -> list[Expected]:
    """The reference model: non-empty lines without their terminators, then truncation."""
    lines = data.split(b"\n")
    out: list[Expected] = []
    for line in lines:
        # A CR before the LF is part of the terminator; a CR at EOF is dropped too (the writer
        # died between the CR and the LF).
        body = line[:-1] if line.endswith(b"\r") else line
        if not body:
            continue
        size = len(body)
        if size <= cap:
            out.append((body, size, False, b""))
        else:
            out.append((body[:cap], size, True, body[-framing.TAIL_BYTES :]))
    return out


def as_tuples(frames: list[Frame]) -> list[Expected]:
    return [(f.data, f.size, f.truncated, f.tail) for f in frames]


def run(chunks: list[bytes], cap: int) -> list[Expected]:
    framer = LineFramer(cap)
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
        assert held_bytes(framer) <= cap + framing.TAIL_BYTES + 1
    last = framer.close()
    if last is not None:
        frames.append(last)
    assert framer.pending_bytes == 0
    return as_tuples(frames)


def held_bytes(framer: LineFramer) -> int:
    return sum(len(piece) for piece in framer._head) + len(framer._tail)


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@contextmanager
def small_tail(n: int) -> Iterator[None]:
    """Shrink TAIL_BYTES so short generated inputs reach the truncation paths."""
    with mock.patch.object(framing, "TAIL_BYTES", n):
        yield


CASES = [
    b"",
    b"\n",
    b"\r\n",
    b"\n\n\r\n\n",
    b"a",
    b"a\n",
    b"a\r\n",
    b"a\r",
    b"a\rb\n",
    b"\r\r\n",
    b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n{"jsonrpc":"2.0","id":1,"result":{}}\r\n',
    b"one\ntwo\r\n\nthree",
    b"x" * 50 + b"\n" + b"y" * 9 + b"\r\n" + b"z" * 10 + b"\r\n" + b"w" * 11 + b"\r\n",
]


def test_known_inputs_whole_and_bytewise() -> None:
    for data in CASES:
        for cap in (1, 2, 10, 1000):
            want = expected_frames(data, cap)
            assert run(whole(data), cap) == want, (data, cap)
            assert run(bytewise(data), cap) == want, (data, cap)
            assert run([data, b""], cap) == want, (data, cap)


def test_two_lines_simple() -> None:
    framer = LineFramer(100)
    assert as_tuples(framer.feed(b"ab\ncd\r\nef")) == [
        (b"ab", 2, False, b""),
        (b"cd", 2, False, b""),
    ]
    assert framer.pending_bytes == 2
    last = framer.close()
    assert last is not None
    assert (last.data, last.size, last.truncated) == (b"ef", 2, False)
    assert framer.close() is None


def test_truncation_keeps_head_tail_and_size() -> None:
    line = (bytes(range(256)) * 40).replace(b"\n", b".").replace(b"\r", b".")  # 10240 bytes
    for terminator in (b"\n", b"\r\n"):
        data = line + terminator
        for chunks in (whole(data), bytewise(data), [data[:5000], data[5000:]]):
            (frame,) = run(chunks, 100)
            assert frame == (line[:100], len(line), True, line[-framing.TAIL_BYTES :])


def test_crlf_straddling_the_cap() -> None:
    # The CR is byte cap+1: once it is dropped the frame fits and is not truncated.
    for cap in (1, 5, 64):
        line = b"q" * cap
        data = line + b"\r\n"
        assert run(bytewise(data), cap) == [(line, cap, False, b"")]
        assert run([data[: cap + 1], data[cap + 1 :]], cap) == [(line, cap, False, b"")]


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LineFramer(0)


segments = st.one_of(
    st.binary(max_size=12).map(lambda b: bytes(b"ab\r\n"[x % 4] for x in b)),
    st.sampled_from([b"\n", b"\r\n", b"\r", b"x"]),
    st.integers(min_value=1, max_value=60).map(lambda n: b"L" * n + b"M"),
)


@settings(deadline=None)  # timing varies on a loaded machine; the logic does not
@given(
    parts=st.lists(segments, max_size=20),
    cap=st.integers(min_value=1, max_value=20),
    tail=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_random_splits_match_the_model(
    parts: list[bytes], cap: int, tail: int, data: st.DataObject
) -> None:
    stream = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    with small_tail(tail):
        want = expected_frames(stream, cap)
        assert run(chunks, cap) == want
        assert run(whole(stream), cap) == want
        assert run(bytewise(stream), cap) == want


@settings(deadline=None)  # timing varies on a loaded machine; the logic does not
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=400))
def test_arbitrary_bytes_whole_vs_bytewise(stream: bytes, cap: int) -> None:
    want = expected_frames(stream, cap)
    assert run(whole(stream), cap) == want
    assert run(bytewise(stream), cap) == want


def test_hundred_megabyte_frame_in_64k_chunks() -> None:
    cap = 1024 * 1024
    block = bytes(i % 251 + 1 if i % 251 + 1 not in (0x0A, 0x0D) else 0x41 for i in range(65536))
    count = 1600  # 100 MiB
    framer = LineFramer(cap)
    limit = cap + framing.TAIL_BYTES + 1
    for _ in range(count):
        assert framer.feed(block) == []
        assert held_bytes(framer) <= limit
    assert framer.pending_bytes == count * len(block)
    frames = framer.feed(b"\r\nnext\n")
    assert [f.data for f in frames[1:]] == [b"next"]
    big = frames[0]
    assert big.truncated
    assert big.size == count * len(block)
    assert big.data == (block * (cap // len(block) + 1))[:cap]
    assert big.tail == block[-framing.TAIL_BYTES :]


@given(
    st.lists(
        st.sampled_from([b"\n", b"\r\n", b"\r", b"x", b"abc", b"\n\n", b"y" * 40]), max_size=80
    ),
    st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    st.lists(st.booleans(), min_size=13, max_size=13),
    st.sampled_from([1, 3, 16, 1000]),
)
def test_skip_counts_exactly_what_feed_would_complete(
    parts: list[bytes], cuts: list[int], skipping: list[bool], cap: int
) -> None:
    """A framer that skips some chunks stays in step with one that feeds them all: a skipped
    chunk reports the frames and bytes the other completed there, a fed one the same frames."""
    data = b"".join(parts)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    with small_tail(4):
        oracle, framer = LineFramer(cap), LineFramer(cap)
        for chunk, skip in zip(chunks, skipping, strict=False):
            want = oracle.feed(chunk)
            if skip:
                assert framer.skip(bytearray(chunk) + b"junk", len(chunk)) == (
                    len(want),
                    sum(f.size for f in want),
                )
            else:
                assert as_tuples(framer.feed(chunk)) == as_tuples(want)
            assert framer.pending_bytes == oracle.pending_bytes
        last, want_last = framer.close(), oracle.close()
        assert (last and as_tuples([last])) == (want_last and as_tuples([want_last]))


def test_skip_examples() -> None:
    framer = LineFramer(100)
    assert framer.skip(b"ab\ncd\r\n\n\r\nef") == (2, 4)
    assert framer.pending_bytes == 2
    assert framer.skip(b"g\r") == (0, 0)
    assert framer.skip(b"\nh\n") == (2, 4)  # "efg" (its CR a terminator) and "h"
    assert framer.close() is None


@given(
    st.lists(st.sampled_from([b"\n", b"\r\n", b"x", b"abc", b"y" * 40]), max_size=60),
    st.integers(min_value=0, max_value=300),
    st.sampled_from([1, 3, 1000]),
)
def test_feed_within_a_budget_then_skip_adds_up_to_one_feed(
    parts: list[bytes], budget: int, cap: int
) -> None:
    """The forwarding loop's overload path: frames up to a budget, the rest only counted."""
    data = b"".join(parts)
    with small_tail(4):
        want = LineFramer(cap).feed(data)
        framer = LineFramer(cap)
        frames, stop = framer.feed_within(data, len(data), 0, budget, 36)
        assert as_tuples(frames) == as_tuples(want[: len(frames)])
        spent = sum(36 + len(f.data) + len(f.tail) for f in frames)
        if stop < len(data):
            assert spent > budget >= spent - 36 - len(frames[-1].data) - len(frames[-1].tail)
        else:
            assert len(frames) == len(want)
        rest = want[len(frames) :]
        assert framer.skip(data, len(data), stop) == (len(rest), sum(f.size for f in rest))


def run_with_one_line(chunks: list[bytes], cap: int) -> list[Expected]:
    """As the relay frames: `one_line` first, `feed` when it says -1."""
    framer = LineFramer(cap)
    out: list[Expected] = []
    for chunk in chunks:
        n = framer.one_line(chunk, len(chunk))
        if n >= 0:
            out.append((chunk[:n], n, False, b""))
        else:
            out.extend(as_tuples(framer.feed(chunk)))
    last = framer.close()
    if last is not None:
        out.extend(as_tuples([last]))
    return out


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        (b'{"id":1}\n', 8),
        (b'{"id":1}\r\n', -1),  # the CR is the terminator's: feed drops it
        (b"\n", -1),  # an empty line is no frame
        (b'{"id":1}', -1),  # unterminated
        (b'{"id":1}\n{"id":2}\n', -1),  # two lines
        (b"x" * 9 + b"\n", -1),  # past the cap of 8
        (b"x" * 8 + b"\n", 8),
    ],
)
def test_one_line_only_for_a_single_whole_line(chunk: bytes, expected: int) -> None:
    assert LineFramer(8).one_line(chunk, len(chunk)) == expected


def test_one_line_not_while_a_frame_is_carried_over() -> None:
    framer = LineFramer(64)
    framer.feed(b'{"id":')
    assert framer.one_line(b"1}\n", 3) == -1
    assert as_tuples(framer.feed(b"1}\n")) == [(b'{"id":1}', 8, False, b"")]


def test_one_line_reads_only_up_to_end() -> None:
    buf = bytearray(b'{"id":1}\nstale bytes of an earlier read\n')
    assert LineFramer(64).one_line(buf, 9) == 8


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"ab\n", b"\n", b"\r\n", b"abc", b"x" * 20 + b"\n", b"a\nb\n"])))
def test_one_line_then_feed_frames_as_feed_alone(chunks: list[bytes]) -> None:
    assert run_with_one_line(chunks, 16) == run(chunks, 16)
