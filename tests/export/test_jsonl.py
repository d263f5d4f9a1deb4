"""The JSONL format in memory: every kind of payload comes back byte for byte, columns travel
generically, and each way a line can be wrong is named with its line number."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from km.export import jsonl
from km.export.jsonl import JsonlError, Record, decode_line

NAMES = ["seq", "id", "session_id", "server", "direction", "ts_ns", "mono_ns", "kind", "method",
         "rpc_id", "size", "payload", "truncated", "tool", "risk", "future_column"]  # fmt: skip


def event_row(payload: bytes, **kw: object) -> list[object]:
    row: dict[str, object] = dict(
        seq=7, id="e1", session_id="s1", server="srv", direction="c2s", ts_ns=10, mono_ns=5,
        kind="request", method="tools/call", rpc_id="1", size=len(payload), payload=payload,
        truncated=0, tool='a "quoted" ,"payload": tool', risk=None, future_column=3,
    )  # fmt: skip
    row.update(kw)
    return [row[n] for n in NAMES]


def round_trip(payload: bytes) -> Record:
    line = jsonl.encode_row(jsonl.EVENT, NAMES, event_row(payload))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    record = decode_line(line, 3)
    assert isinstance(record, Record)
    return record


PAYLOADS = [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}',
    b'{ "spaced" :  [1, 2.50, 1e3] , "u":"\\u00e9\\ud83d\\ude00" }',  # not orjson's spelling
    b'"a JSON string"',
    b"null",
    b'{"inner":",\\"payload\\":{}","payload":1}',
    b'{"jsonrpc":"2.0","id":1,"res',  # truncated by the payload cap
    b"\xff\xfe not utf-8",
    b'{"a":1}\r',
    b"",
    b'{"multi":\n"line"}',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_come_back_byte_for_byte(payload: bytes) -> None:
    record = round_trip(payload)
    assert record.fields["payload"] == payload
    assert "seq" not in record.fields  # the spool's own row number is not exported
    assert record.fields["future_column"] == 3 and record.fields["risk"] is None
    assert record.fields["tool"] == 'a "quoted" ,"payload": tool'


def test_json_payloads_are_json_in_the_file_others_base64() -> None:
    doc = orjson.loads(jsonl.encode_row(jsonl.EVENT, NAMES, event_row(PAYLOADS[0])))
    assert doc["payload"]["params"]["name"] == "x" and "payload_b64" not in doc
    doc = orjson.loads(jsonl.encode_row(jsonl.EVENT, NAMES, event_row(PAYLOADS[5])))
    assert base64.b64decode(doc["payload_b64"]) == PAYLOADS[5] and "payload" not in doc


@given(st.binary(max_size=200) | st.from_regex(rb'\A\{"k":"[^"\\\n\r]{0,40}"\}\Z'))
def test_any_payload_round_trips(payload: bytes) -> None:
    assert round_trip(payload).fields["payload"] == payload


def test_a_hand_reordered_event_still_reads_as_the_same_json() -> None:
    doc = orjson.loads(jsonl.encode_row(jsonl.EVENT, NAMES, event_row(b'{"a":[1,2]}')))
    moved = {"payload": doc.pop("payload"), **doc}
    record = decode_line(orjson.dumps(moved) + b"\n", 1)
    assert isinstance(record, Record) and orjson.loads(record.fields["payload"]) == {"a": [1, 2]}


def test_other_blob_columns_travel_as_base64() -> None:
    line = jsonl.encode_row(jsonl.SESSION, ["session_id", "server", "command", "started_ns",
                                            "blob"], ["s", "x", "[]", 1, b"\x00\x01"])  # fmt: skip
    record = decode_line(line, 2)
    assert isinstance(record, Record) and record.fields["blob"] == b"\x00\x01"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"type":"event","id":"e"', "line 9: not JSON"),
        (b'{"type":"event","id":"e"', "truncated"),
        (b"[1,2]\n", "line 9: expected a JSON object"),
        (b'{"type":"evnt"}\n', "unknown record type 'evnt'"),
        (b'{"type":"event","id":"e","session_id":"s","server":"x","direction":"c2s",'
         b'"ts_ns":"soon","mono_ns":1,"kind":"request","size":1,"payload":1}\n',
         "event field 'ts_ns': str, not int"),
        (b'{"type":"event","id":"e","session_id":"s","server":"x","direction":"c2s",'
         b'"ts_ns":1,"mono_ns":1,"kind":"request","size":1}\n', "'payload'"),
        (b'{"type":"event","id":"e","session_id":"s","server":"x","direction":"c2s",'
         b'"ts_ns":1,"mono_ns":1,"kind":"request","size":1,"payload_b64":"!!"}\n',
         "not valid base64"),
        (b'{"type":"event","id":"e","session_id":"s","server":"x","direction":"c2s",'
         b'"ts_ns":1,"mono_ns":1,"kind":"request","size":1,"risk":"high","payload":1}\n',
         "'risk': str not allowed"),
        (b'{"type":"session","session_id":"s","server":"x","command":"[]"}\n',
         "session field 'started_ns': missing"),
        (b'{"type":"km-export","format":99}\n', "export format 99"),
        (b'{"type":"end","sessions":1}\n', "without a count of events"),
        (b"\n", "empty line"),
    ],
)  # fmt: skip
def test_bad_lines_are_named(line: bytes, expected: str) -> None:
    with pytest.raises(JsonlError) as caught:
        decode_line(line, 9)
    assert caught.value.line == 9 and expected in str(caught.value)
