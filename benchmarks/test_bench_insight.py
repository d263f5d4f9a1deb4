"""Micro-benchmarks of the insight analysis in the capture path (`SessionAnalyzer` via
`CapturePipeline`), each group with its baseline measured in the same run:

- `insight: tools/call exchange`: a 150-byte-class `tools/call` request and its response through
  the capture pipeline with the analysis on (tool, status, tokens, risk) against the same
  pipeline without it (classification and correlation only). Budget: the analysis adds at most
  20 us per exchange.
- `insight: notification`: a 150-byte notification (what the 20,000 msg/s capture rate is
  measured with), analysis on and off.
- `insight: 200-tool tools/list`: a whole listing analysed (definitions, hashes, poisoning
  scan, token counts, notes). Budget: 50 ms.

Run with `.venv/bin/pytest benchmarks/test_bench_insight.py --benchmark-enable`.
"""

from __future__ import annotations

import itertools

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from km.capture.framing import Frame
from km.capture.pipeline import CapturePipeline
from km.events import C2S, S2C
from km.insight import tokens
from km.insight.session import SessionAnalyzer

CALL = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello there"}}}'  # noqa: E501
RESULT = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"Echo: hello there"}]}}'  # noqa: E501
NOTE = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"' + (
    b"x" * 60 + b'"}}'
)
ECHO = {
    "name": "echo",
    "description": "Echoes back the input",
    "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}},
}


def _frame(data: bytes) -> Frame:
    return Frame(data, len(data), False, b"")


def _pipeline(analysis: bool) -> CapturePipeline:
    numbers = itertools.count()
    analyzer = SessionAnalyzer("bench") if analysis else None
    pipeline = CapturePipeline("s", "bench", new_id=lambda: f"e{next(numbers)}", analyzer=analyzer)
    if analysis:  # a session that listed its tools first, as clients do
        pipeline.process(C2S, 0, 0, _frame(b'{"jsonrpc":"2.0","id":0,"method":"tools/list"}'))
        listing = orjson.dumps({"jsonrpc": "2.0", "id": 0, "result": {"tools": [ECHO]}})
        pipeline.process(S2C, 0, 0, _frame(listing))
    return pipeline


@pytest.fixture(scope="module", autouse=True)
def _tokenizer_loaded() -> None:
    tokens.warm()  # loaded once per session in km too, before the calls come


@pytest.mark.parametrize("analysis", [False, True], ids=["baseline", "analysis"])
def test_tools_call_exchange(benchmark: BenchmarkFixture, analysis: bool) -> None:
    pipeline = _pipeline(analysis)
    ids = itertools.count(1)
    frames = [(_frame(CALL % n), _frame(RESULT % n)) for n in range(1, 20_001)]
    process = pipeline.process
    benchmark.group = "insight: tools/call exchange"

    def exchange() -> None:
        request, response = frames[next(ids) % len(frames)]
        process(C2S, 1, 1, request)
        process(S2C, 2, 2, response)

    benchmark(exchange)
    reply = process(S2C, 3, 3, _frame(RESULT % 1))  # unmatched: no request pending any more
    assert reply.status == ("ok" if analysis else None)


@pytest.mark.parametrize("analysis", [False, True], ids=["baseline", "analysis"])
def test_notification(benchmark: BenchmarkFixture, analysis: bool) -> None:
    pipeline = _pipeline(analysis)
    frame = _frame(NOTE)
    assert 140 <= len(NOTE) <= 160
    benchmark.group = "insight: notification"
    event = benchmark(pipeline.process, S2C, 1, 1, frame)
    assert event.tool is None


def test_listing_of_200_tools(benchmark: BenchmarkFixture) -> None:
    tools = [
        {
            "name": f"tool_{i}",
            "description": f"Does thing number {i} with the given path and returns the result.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "the file to work on"},
                    "limit": {"type": "integer", "default": 10},
                },
                "required": ["path"],
            },
            "annotations": {"readOnlyHint": i % 2 == 0},
        }
        for i in range(200)
    ]
    request = _frame(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
    response = _frame(orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}))
    benchmark.group = "insight: 200-tool tools/list"

    def listing() -> int:
        pipeline = CapturePipeline("s", "bench", analyzer=SessionAnalyzer("bench"))
        pipeline.process(C2S, 1, 1, request)
        event = pipeline.process(S2C, 2, 2, response)
        return len(event.notes or [])

    assert benchmark(listing) >= 1
