"""Micro-benchmarks of `LineFramer` against plain `bytes.split`, fed as a relay reads.

Run with `.venv/bin/pytest benchmarks --benchmark-enable`. Each group holds the framer and its
baselines over the same chunks: `split-whole` (one `bytes.split` over the joined input: the
floor) and `split-chunked` (the carry-over loop people write by hand).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from km.capture.framing import LineFramer
from km.settings import DEFAULT_DEFINITIONS_CAP, DEFAULT_PAYLOAD_CAP

MB = 1_000_000
LINE = (
    b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"' + b"x" * 78 + b'"}}\n'
)
assert len(LINE) == 150


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


SMALL_LINES = LINE * (1_000_000 // len(LINE))  # ~1 MB of 150-byte lines
BIG_LINE = b"{" + b"x" * (16 * 1024 * 1024 - 3) + b"}\n"  # one 16 MiB line
# A 16 MiB tools/list result: kept whole by a framer with the definitions cap.
_TOOL = b'{"name":"t","description":"' + b"d" * 200 + b'","inputSchema":{"type":"object"}},'
TOOLS_LINE = b'{"jsonrpc":"2.0","id":2,"result":{"tools":['
TOOLS_LINE += _TOOL * ((16 * 1024 * 1024 - 200) // len(_TOOL)) + b'{"name":"last"}]}}\n'
CASES = {
    "1MB-of-150B-lines-64KB-chunks": (_chunks(SMALL_LINES, 64 * 1024), SMALL_LINES.count(b"\n")),
    "16MiB-line-256KB-chunks": (_chunks(BIG_LINE, 256 * 1024), 1),
    "16MiB-tools-list-256KB-chunks": (_chunks(TOOLS_LINE, 256 * 1024), 1),
}


def framer(chunks: list[bytes]) -> int:
    f = LineFramer(DEFAULT_PAYLOAD_CAP)
    n = 0
    for chunk in chunks:
        n += len(f.feed(chunk))
    return n + (f.close() is not None)


def framer_definitions(chunks: list[bytes]) -> int:
    """The framer as km runs it: oversized list and initialize results kept whole."""
    f = LineFramer(DEFAULT_PAYLOAD_CAP, DEFAULT_DEFINITIONS_CAP)
    n = 0
    for chunk in chunks:
        n += len(f.feed(chunk))
    return n + (f.close() is not None)


def split_whole(chunks: list[bytes]) -> int:
    return len(b"".join(chunks).split(b"\n")) - 1


def split_chunked(chunks: list[bytes]) -> int:
    n = 0
    carry = b""
    for chunk in chunks:
        *lines, carry = (carry + chunk).split(b"\n")
        n += len(lines)
    return n


IMPLEMENTATIONS: dict[str, Callable[[list[bytes]], int]] = {
    "framer": framer,
    "framer-definitions": framer_definitions,
    "split-whole": split_whole,
    "split-chunked": split_chunked,
}


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("case", list(CASES))
def test_framing(benchmark: BenchmarkFixture, case: str, impl: str) -> None:
    chunks, lines = CASES[case]
    nbytes = sum(map(len, chunks))
    benchmark.group = f"framing: {case}"
    benchmark.extra_info["bytes"] = nbytes
    result = benchmark(IMPLEMENTATIONS[impl], chunks)
    assert result == lines
    if benchmark.stats is not None:
        benchmark.extra_info["MB/s"] = round(nbytes / benchmark.stats.stats.mean / MB, 1)
