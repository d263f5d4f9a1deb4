"""Token counts: the tokenizer against an independent reference, message content per method,
tool lists, and bad input (never an exception)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from km.insight.tokens import (
    ENCODING,
    content_tokens,
    count_tokens,
    tokens_are_estimate,
    tool_list_tokens,
    tool_text,
    tool_tokens,
)

# Counts tiktoken 0.14.0 gives with o200k_base (its own `encode_ordinary`, OpenAI's published
# o200k_base.tiktoken, sha256 446a9538...): an independent implementation of the same encoding.
TIKTOKEN_O200K = [
    ("hello world", 2),
    ("The quick brown fox jumps over the lazy dog.", 10),
    ("def main():\n    print('hi')\n", 8),
    ('{"path":"/home/u/proj/README.md","head":20}', 16),
    ("Grüße aus Köln \u2013 naïve café", 9),  # an en dash
    ("日本語のテキストを数える", 9),
    ("emoji 😀🚀 and <|endoftext|> as text", 14),
    ("    indented\n\n\n\ttabs\r\n", 7),
    ("x" * 1000, 125),
    ("", 0),
]


@pytest.mark.parametrize(("text", "expected"), TIKTOKEN_O200K)
def test_counts_equal_tiktoken_o200k(text: str, expected: int) -> None:
    assert ENCODING == "o200k_base"
    assert count_tokens(text) == expected


def test_lone_surrogates_count_as_replacement_characters() -> None:
    assert count_tokens("a\ud800b") == count_tokens("a\ufffdb")


def test_importing_tokens_loads_no_tokenizer() -> None:
    code = (
        "import sys, km.insight.tokens as t, km.insight.risk, km.insight.cost;"
        "print('quicktok' in sys.modules, t._count is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_estimate_for_models_whose_tokenizer_differs() -> None:
    assert not tokens_are_estimate("gpt-4o-2024-08-06")
    assert not tokens_are_estimate("gpt-5-mini")
    assert tokens_are_estimate("claude-sonnet-4-5")
    assert tokens_are_estimate("gemini-2.5-pro")


def msg(**fields: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, **fields})


def call(arguments: object) -> bytes:
    return msg(method="tools/call", params={"name": "t", "arguments": arguments})


def test_tools_call_request_counts_the_arguments_as_compact_json() -> None:
    arguments = {"path": "/home/u/proj/README.md", "head": 20}
    assert content_tokens("request", "tools/call", call(arguments)) == 16  # as tiktoken, above
    no_arguments = msg(method="tools/call", params={"name": "a_tool_name"})
    assert content_tokens("request", "tools/call", no_arguments) == 0


def test_tools_call_result_counts_text_items_and_embedded_resources() -> None:
    result = {
        "content": [
            {"type": "text", "text": "hello world"},
            {"type": "image", "data": "iVBORw0KGgo" * 100, "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "x://a", "text": "hello world"}},
        ]
    }
    assert content_tokens("response", "tools/call", msg(result=result)) == count_tokens(
        "hello world\nhello world"
    )


def test_structured_content_counts_only_without_text() -> None:
    structured = {"temperature": 21.5, "unit": "C"}
    as_text = json.dumps(structured)
    both = {"content": [{"type": "text", "text": as_text}], "structuredContent": structured}
    only = {"content": [], "structuredContent": structured}
    assert content_tokens("response", "tools/call", msg(result=both)) == count_tokens(as_text)
    assert content_tokens("response", "tools/call", msg(result=only)) == count_tokens(
        orjson.dumps(structured).decode()
    )


def test_prompts_resources_sampling_and_tool_lists() -> None:
    prompt = {"messages": [{"role": "user", "content": {"type": "text", "text": "hello world"}}]}
    assert content_tokens("response", "prompts/get", msg(result=prompt)) == 2
    contents = {"contents": [{"uri": "a", "text": "hello world"}, {"uri": "b", "blob": "AAAA"}]}
    assert content_tokens("response", "resources/read", msg(result=contents)) == 2
    sampling = {
        "systemPrompt": "Be brief.",
        "messages": [{"role": "user", "content": {"type": "text", "text": "hello world"}}],
    }
    assert content_tokens(
        "request", "sampling/createMessage", msg(method="sampling/createMessage", params=sampling)
    ) == count_tokens("Be brief.\nhello world")
    tools = [{"name": "echo", "description": "Echoes", "inputSchema": {"type": "object"}}]
    assert content_tokens("response", "tools/list", msg(result={"tools": tools})) == (
        tool_list_tokens(tools)
    )


@pytest.mark.parametrize(
    ("kind", "method", "payload"),
    [
        ("notification", "notifications/progress", msg(method="notifications/progress")),
        ("response", "initialize", msg(result={"protocolVersion": "2025-06-18"})),
        ("error", "tools/call", msg(error={"code": -32601, "message": "no such tool"})),
        ("response", None, msg(result={})),
        ("response", "tools/call", b"{}"),  # tiny
        ("response", "tools/call", msg(result={"content": [{"text": "cut"}]})[:-9]),  # truncated
        ("response", "tools/call", b"not json at all, but long enough " * 3),
        ("response", "tools/call", b'["result", 1, 2, 3, 4, 5, 6, 7, 8, 9]'),
        ("response", "tools/call", msg(result=[1, 2])),
        ("request", "tools/call", msg(method="tools/call", params=["arguments"])),
        ("request", "prompts/get", msg(method="prompts/get", params={"arguments": {"a": 1}})),
        ("request", "tools/call", msg(method="tools/call", params={"name": "a_tool"})[:-3]),
        ("request", "tools/call", b"tools/call but not JSON, and long enough"),
    ],
)
def test_messages_without_content_give_none(kind: str, method: str | None, payload: bytes) -> None:
    assert content_tokens(kind, method, payload) is None


def test_what_orjson_refuses_json_still_counts() -> None:
    big = (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"n":1'
        + (b"0" * 30)
        + b"}}}"
    )
    assert (content_tokens("request", "tools/call", big) or 0) > 5  # a float past 64 bits
    surrogate = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"text":"a\\ud800b"}]}}'
    assert content_tokens("response", "tools/call", surrogate) == count_tokens("a\ufffdb")


def test_deep_nesting_gives_none_not_an_exception() -> None:
    deep = b'{"jsonrpc":"2.0","id":1,"result":{"content":' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
    assert content_tokens("response", "tools/call", deep) in (None, 0)
    args = b'{"method":"tools/call","params":{"arguments":' + b"[" * 5_000 + b"]" * 5_000 + b"}}"
    assert isinstance(content_tokens("request", "tools/call", args), int | None)


def test_tool_text_is_what_clients_send() -> None:
    tool = {
        "name": "echo",
        "title": "Echo",
        "description": "Echoes",
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": True},
    }
    assert json.loads(tool_text(tool)) == {
        "name": "echo",
        "description": "Echoes",
        "input_schema": {"type": "object"},
    }
    assert tool_tokens(tool) == count_tokens(tool_text(tool))


def test_tool_list_tokens_sums_tools_and_skips_junk() -> None:
    a = {"name": "a", "description": "first tool", "inputSchema": {"type": "object"}}
    b = {"name": "b", "description": "second tool " * 50, "inputSchema": {"type": "object"}}
    assert tool_list_tokens([a, b]) == tool_tokens(a) + tool_tokens(b)
    assert tool_list_tokens([a, "junk", 3, None, b]) == tool_list_tokens([a, b])  # type: ignore[list-item]
    assert tool_list_tokens([]) == 0
    assert tool_list_tokens("not a list") == 0  # type: ignore[arg-type]
    odd = {"name": 5, "description": None, "inputSchema": {1: 2, "deep": [[[[]]]]}}
    assert tool_tokens(odd) > 0


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    value=JSON,
    kind=st.sampled_from(["request", "response", "error"]),
    method=st.sampled_from(
        [
            "tools/call",
            "prompts/get",
            "resources/read",
            "tools/list",
            "sampling/createMessage",
            "ping",
        ]
    ),
    cut=st.integers(min_value=0, max_value=400),
)
def test_never_raises(value: object, kind: str, method: str, cut: int) -> None:
    for shape in (
        {"result": value},
        {"params": {"arguments": value}},
        {"result": {"content": value}},
    ):
        payload = orjson.dumps({"jsonrpc": "2.0", "id": 1, **shape})
        for data in (payload, payload[:cut]):
            result = content_tokens(kind, method, data)
            assert result is None or result >= 0
    assert tool_tokens({"name": "x", "inputSchema": value}) >= 0
