"""LineFramer with a definitions cap: list and initialize results kept whole past the payload
cap, every other frame exactly as before. Fed whole, in small pieces and byte by byte."""

from __future__ import annotations

import orjson
import pytest

from km.capture.framing import TAIL_BYTES, Frame, LineFramer, is_definitions

CAP = 256
DCAP = 64 * 1024


def tools_result(n: int, spaced: bool = False) -> bytes:
    tools = [{"name": f"tool{i}", "description": "d" * 40} for i in range(n)]
    doc = {"jsonrpc": "2.0", "id": 2, "result": {"tools": tools}}
    if spaced:
        import json

        return json.dumps(doc).encode()  # `"tools": [` with a space, as Python's json writes
    return orjson.dumps(doc)


def feed(line: bytes, step: int | None, cap: int = CAP, dcap: int = DCAP) -> list[Frame]:
    framer = LineFramer(cap, dcap)
    data = line + b"\n"
    if step is None:
        return framer.feed(data)
    out: list[Frame] = []
    for i in range(0, len(data), step):
        out += framer.feed(data[i : i + step])
    return out


@pytest.mark.parametrize("step", [None, 1, 7, 255, 256, 257, 4096])
@pytest.mark.parametrize(
    "line",
    [
        tools_result(100),
        tools_result(100, spaced=True),
        orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": {"prompts": [{"name": "p" * 500}]}}),
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {"resourceTemplates": [{"uriTemplate": "x" * 500}]},
            }
        ),
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "result": {"serverInfo": {"name": "s"}, "instructions": "i" * 1000},
            }
        ),
    ],
)
def test_definitions_are_kept_whole(line: bytes, step: int | None) -> None:
    assert len(line) > CAP
    (frame,) = feed(line, step)
    assert (frame.data, frame.size, frame.truncated, frame.tail) == (line, len(line), False, b"")


@pytest.mark.parametrize("step", [None, 1, 100, 256, 4096])
def test_other_frames_are_cut_as_before(step: int | None) -> None:
    line = orjson.dumps(
        {"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "x" * 5000}]}}
    )
    (frame,) = feed(line, step)
    (plain,) = feed(line, step, dcap=0)
    assert frame.truncated and frame.data == line[:CAP] and frame.size == len(line)
    assert (frame.data, frame.tail, frame.size) == (plain.data, plain.tail, plain.size)


@pytest.mark.parametrize("step", [None, 1000, 4096])
def test_definitions_past_the_definitions_cap_are_cut_there(step: int | None) -> None:
    line = tools_result(3000)
    dcap = 20_000
    assert len(line) > dcap
    (frame,) = feed(line, step, dcap=dcap)
    assert frame.truncated and frame.size == len(line)
    assert frame.data == line[:dcap] and frame.tail == line[-TAIL_BYTES:]


def test_a_marker_past_the_payload_cap_does_not_count() -> None:
    line = b'{"jsonrpc":"2.0","id":1,"result":{"pad":"' + b"x" * 400 + b'","tools":[]}}'
    (frame,) = feed(line, None)
    assert frame.truncated and frame.data == line[:CAP]


def test_escaped_keys_inside_strings_do_not_count() -> None:
    text = orjson.dumps({"tools": [1]}).decode()
    line = orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": {"text": text + "y" * 500}})
    assert b'\\"tools\\":[' in line
    (frame,) = feed(line, 3)
    assert frame.truncated


@pytest.mark.parametrize("step", [None, 1, 100, 4096])
def test_a_notification_holding_a_list_key_is_cut_at_the_payload_cap(step: int | None) -> None:
    line = orjson.dumps(
        {"jsonrpc": "2.0", "method": "notifications/message", "params": {"tools": ["t" * 500]}}
    )
    (frame,) = feed(line, step)
    assert frame.truncated and frame.data == line[:CAP] and frame.size == len(line)


def test_the_next_frame_starts_with_the_payload_cap_again() -> None:
    framer = LineFramer(CAP, DCAP)
    big = tools_result(50)
    other = b'{"jsonrpc":"2.0","method":"x","params":{"t":"' + b"z" * 1000 + b'"}}'
    frames = framer.feed(big + b"\n" + other[:500]) + framer.feed(other[500:] + b"\r\n")
    assert [f.truncated for f in frames] == [False, True]
    assert frames[1].data == other[:CAP] and frames[1].size == len(other)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'{"result":{"tools":[', True),
        (b'{"result":{"tools" : \n [', True),
        (b'{"result":{"tools":{}', False),
        (b'{"result":{"tools"', False),  # cut before the colon
        (b'{"a":"tools","b":"tools":1,"prompts":[', True),
        (b'{"result":{"serverInfo"', True),
        (b'{"result":{"toolsx":[', False),
        (b"", False),
        # a request or notification is never a definitions result, whatever its params hold
        (b'{"jsonrpc":"2.0","method":"notifications/x","params":{"tools":[', False),
        (b'{"jsonrpc":"2.0","id":4,"method":"x","params":{"serverInfo":{}', False),
        # "method" inside a result (a tool's parameter named so) does not hide the result
        (b'{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"http","method":1}]', True),
        (b'{"id":2,"result":{"meta":{"method":"x"},"tools":[', True),
        # "method" with a space before its colon: searched as before
        (b'{"method" :"x","result":{"tools":[', True),
    ],
)
def test_is_definitions(head: bytes, expected: bool) -> None:
    assert is_definitions(head, 0, len(head)) is expected
