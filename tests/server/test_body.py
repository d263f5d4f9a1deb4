"""BodyDecoder: identity and gzip, fed whole, byte by byte and in random splits; the cap holds
after decompression (a small gzip bomb stops after limit + 1 bytes of output)."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest

from km.server.body import BodyDecoder, wire_limit
from km.server.errors import BadRequest, BodyTooLarge, UnsupportedEncoding

BODY = b'{"events": [' + b",".join(b'{"n": %d}' % i for i in range(2000)) + b"]}"


def feed_all(decoder: BodyDecoder, data: bytes, sizes: list[int]) -> bytes:
    pos = 0
    for size in sizes:
        decoder.feed(data[pos : pos + size])
        pos += size
    decoder.feed(data[pos:])
    return decoder.finish()


def splits(data: bytes) -> list[list[int]]:
    rng = random.Random(7)
    random_sizes = []
    total = 0
    while total < len(data):
        n = rng.randint(1, 300)
        random_sizes.append(n)
        total += n
    return [[], [1] * len(data), random_sizes]


@pytest.mark.parametrize("encoding", [None, "", "identity", "gzip", "x-gzip", "GZIP"])
def test_whole_bytewise_and_split(encoding: str | None) -> None:
    wire = gzip.compress(BODY) if encoding and "gzip" in encoding.lower() else BODY
    for sizes in splits(wire):
        assert feed_all(BodyDecoder(encoding, len(BODY)), wire, sizes) == BODY


def test_concatenated_gzip_members() -> None:
    wire = gzip.compress(BODY[:100]) + gzip.compress(BODY[100:])
    for sizes in splits(wire):
        assert feed_all(BodyDecoder("gzip", len(BODY)), wire, sizes) == BODY


def test_identity_over_the_limit() -> None:
    decoder = BodyDecoder(None, 10)
    decoder.feed(b"x" * 10)
    with pytest.raises(BodyTooLarge):
        decoder.feed(b"x")


def test_gzip_exactly_at_the_limit_passes_and_one_more_byte_fails() -> None:
    data = b"a" * 10_000
    assert feed_all(BodyDecoder("gzip", 10_000), gzip.compress(data), []) == data
    with pytest.raises(BodyTooLarge):
        BodyDecoder("gzip", 9_999).feed(gzip.compress(data))


def test_a_gzip_bomb_stops_at_the_cap() -> None:
    limit = 1024 * 1024
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)  # ~250 KiB on the wire
    assert len(bomb) < wire_limit(limit)
    decoder = BodyDecoder("gzip", limit)
    with pytest.raises(BodyTooLarge) as info:
        for i in range(0, len(bomb), 65536):
            decoder.feed(bomb[i : i + 65536])
    assert "decompressed" in str(info.value)
    assert len(decoder._out) <= limit + 1  # never inflated past the cap


def test_too_many_compressed_bytes() -> None:
    decoder = BodyDecoder("gzip", 100)
    with pytest.raises(BodyTooLarge):
        decoder.feed(b"\x1f\x8b" + b"x" * wire_limit(100))


def test_bad_and_truncated_gzip() -> None:
    with pytest.raises(BadRequest, match="not valid gzip"):
        BodyDecoder("gzip", 1000).feed(b"this is not gzip")
    truncated = BodyDecoder("gzip", len(BODY))
    truncated.feed(gzip.compress(BODY)[:-10])
    with pytest.raises(BadRequest, match="truncated"):
        truncated.finish()
    garbage_after = BodyDecoder("gzip", len(BODY))
    with pytest.raises(BadRequest, match="not valid gzip"):
        garbage_after.feed(gzip.compress(BODY) + b"trailing")


def test_raw_deflate_is_not_gzip() -> None:
    with pytest.raises(BadRequest):
        BodyDecoder("gzip", len(BODY)).feed(zlib.compress(BODY))


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, br"])
def test_unsupported_encodings(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding) as info:
        BodyDecoder(encoding, 10)
    assert info.value.encoding == encoding
