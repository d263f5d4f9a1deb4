"""`redact_payload`: JSON-RPC messages as captured, whole, cut short, not JSON, not UTF-8."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from km.redact import (
    DEFAULT_RULES,
    METADATA_ONLY_PAYLOAD,
    RedactionRules,
    redact_payload,
    redact_payload_with_report,
    unchanged_payloads,
)
from tests.redact import fakes


def call(arguments: dict[str, Any], **extra: Any) -> bytes:
    msg = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    msg["params"] = {"name": "t", "arguments": arguments, **extra}
    return orjson.dumps(msg)


def result(text: str) -> bytes:
    content = [{"type": "text", "text": text}]
    return orjson.dumps({"jsonrpc": "2.0", "id": 7, "result": {"content": content}})


def redacted(payload: bytes, rules: RedactionRules = DEFAULT_RULES) -> Any:
    out = redact_payload(payload, rules)
    assert redact_payload(out, rules) == out  # idempotent
    return orjson.loads(out)


# --- unchanged payloads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        call({"query": "language:python", "page": 1}),
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}',
        b'{ "jsonrpc" : "2.0",\n  "id" : 1, "result" : {"tools" : []} }\n',
        call({"max_tokens": 500, "usage": {"input_tokens": 3, "output_tokens": 4}}),
        call({"text": "the token was long and the session short"}),  # needles, no secret
        call({"_meta": {"progressToken": "abc-123"}}),
        b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":5}}',
        b'{"id":9007199254740993,"n":1.0000000000000002,"t":1715250000123}',
        b"",
        b"Server started on stdio",
    ],
)
def test_unchanged_payload_is_the_same_object(payload: bytes) -> None:
    out, report = redact_payload_with_report(payload)
    assert out is payload
    assert report == {}


# --- keys -----------------------------------------------------------------------------------


def test_value_under_a_sensitive_key_whatever_its_type() -> None:
    args = {
        "password": "hunter2",
        "token": 12345,
        "auth": {"user": "bob", "pass": "x"},
        "cookies": ["a", "b"],
        "secret": None,
        "api_key": True,
        "query": "hi",
        "max_tokens": 500,
    }
    out = redacted(call(args))
    assert out["params"]["arguments"] == {
        "password": "[REDACTED:key]",
        "token": "[REDACTED:key]",
        "auth": "[REDACTED:key]",
        "cookies": "[REDACTED:key]",
        "secret": "[REDACTED:key]",
        "api_key": "[REDACTED:key]",
        "query": "hi",
        "max_tokens": 500,
    }


def test_envelope_is_never_redacted() -> None:
    payload = b'{"jsonrpc":"2.0","id":"bob@example.com","method":"token","params":{"token":"x"}}'
    out = redacted(payload)
    assert out["jsonrpc"] == "2.0"
    assert out["id"] == "bob@example.com"
    assert out["method"] == "token"
    assert out["params"] == {"token": "[REDACTED:key]"}


def test_envelope_of_each_message_in_a_batch() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a@b.io", "method": "x", "params": {"password": "p"}},
        {"jsonrpc": "2.0", "id": 2, "result": {"email": "bob@example.com"}},
    ]
    out = redacted(orjson.dumps(batch))
    assert out == [
        {"jsonrpc": "2.0", "id": "a@b.io", "method": "x", "params": {"password": "[REDACTED:key]"}},
        {"jsonrpc": "2.0", "id": 2, "result": {"email": "[REDACTED:email]"}},
    ]


def test_nested_members_named_like_the_envelope_are_redacted() -> None:
    out = redacted(call({"id": "bob@example.com", "method": "Bearer abcdef123456"}))
    assert out["params"]["arguments"] == {
        "id": "[REDACTED:email]",
        "method": "Bearer [REDACTED:bearer]",
    }


def test_name_value_pairs() -> None:
    env = [
        {"name": "GITHUB_PERSONAL_ACCESS_TOKEN", "value": "abc"},
        {"name": "HOME", "value": "/root"},
        {"key": "Authorization", "value": "Basic abc"},
        {"name": "token_count", "value": 3},
    ]
    out = redacted(call({"env": env}))
    assert out["params"]["arguments"]["env"] == [
        {"name": "GITHUB_PERSONAL_ACCESS_TOKEN", "value": "[REDACTED:key]"},
        {"name": "HOME", "value": "/root"},
        {"key": "Authorization", "value": "[REDACTED:key]"},
        {"name": "token_count", "value": 3},
    ]


def test_schema_properties_named_like_secrets_stay() -> None:
    tool = {
        "name": "login",
        "inputSchema": {
            "type": "object",
            "properties": {
                "password": {"type": "string", "description": "mail ops@example.com"},
                "token": {"type": "string", "default": "abc"},
            },
            "required": ["password"],
        },
    }
    payload = orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": [tool]}})
    out = redacted(payload)
    props = out["result"]["tools"][0]["inputSchema"]["properties"]
    assert props == {
        "password": {"type": "string", "description": "mail [REDACTED:email]"},
        "token": {"type": "string", "default": "abc"},
    }


def test_properties_that_are_not_a_schema_are_values() -> None:
    out = redacted(call({"properties": {"password": {"value": "x"}, "token": "y"}}))
    assert out["params"]["arguments"]["properties"] == {
        "password": "[REDACTED:key]",
        "token": "[REDACTED:key]",
    }


def test_secret_in_a_key_is_redacted_and_colliding_keys_are_kept() -> None:
    out = redacted(call({"users": {"a@example.com": 1, "b@example.com": 2, "n": 3}}))
    assert out["params"]["arguments"]["users"] == {
        "[REDACTED:email]": 1,
        "[REDACTED:email]#2": 2,
        "n": 3,
    }


# --- strings --------------------------------------------------------------------------------


def test_email_in_json_inside_content_text() -> None:
    inner = {"rows": [{"user": {"contact": "jane@example.com"}}], "count": 1}
    out = redacted(result(orjson.dumps(inner).decode()))
    text = out["result"]["content"][0]["text"]
    assert "jane@example.com" not in text
    assert orjson.loads(text) == {"rows": [{"user": {"contact": "[REDACTED:email]"}}], "count": 1}


def test_sensitive_key_in_json_inside_content_text() -> None:
    inner = '{\n  "config": {\n    "apiKey": "abc",\n    "max_tokens": 5\n  }\n}'
    out = redacted(result(inner))
    text = out["result"]["content"][0]["text"]
    assert text == '{\n  "config": {\n    "apiKey": "[REDACTED:key]",\n    "max_tokens": 5\n  }\n}'


def test_json_three_levels_deep_in_strings() -> None:
    level3 = orjson.dumps({"password": "p", "n": 1}).decode()
    level2 = orjson.dumps({"text": level3}).decode()
    out = redacted(result(level2))
    text2 = orjson.loads(out["result"]["content"][0]["text"])
    assert orjson.loads(text2["text"]) == {"password": "[REDACTED:key]", "n": 1}


def test_json_text_with_only_value_patterns_keeps_its_layout() -> None:
    inner = '[ {"url": "https://u:pw@h.io/x"} ,  {"url": "https://h.io"} ]'
    out = redacted(result(inner))
    assert out["result"]["content"][0]["text"] == (
        '[ {"url": "https://[REDACTED:url_credentials]@h.io/x"} ,  {"url": "https://h.io"} ]'
    )


def test_every_kind_in_a_tool_result() -> None:
    for kind, text, secret in fakes.POSITIVE:
        out = redact_payload(result(text))
        assert secret.encode() not in out, kind
        assert orjson.dumps(secret)[1:-1] not in out, kind
        assert f"[REDACTED:{kind}]".encode() in out, kind


def test_escaped_characters_do_not_hide_a_secret() -> None:
    payload = b'{"a":"mail bob\\u0040example.com","b":"https:\\/\\/u:pw@h.io","c":"\\u0074oken=x"}'
    out = redacted(payload)
    assert out == {
        "a": "mail [REDACTED:email]",
        "b": "https://[REDACTED:url_credentials]@h.io",
        "c": "token=[REDACTED:key]",
    }


def test_whitespace_around_the_json_is_kept() -> None:
    out = redact_payload(b'  {"password": "x"}\r\n')
    assert out == b'  {"password":"[REDACTED:key]"}\r\n'


# --- payloads that are not whole JSON -------------------------------------------------------


def test_truncated_json() -> None:
    payload = call({"query": "x", "password": "hunter2", "note": "y" * 50})[:-40]
    out = redact_payload(payload)
    assert b"hunter2" not in out
    assert out.startswith(payload[: payload.index(b"hunter2")])
    assert b'"password":"[REDACTED:key]"' in out


def test_truncated_json_cut_inside_the_secret() -> None:
    payload = call({"token": fakes.GITHUB_CLASSIC})
    cut = payload[: payload.index(b"ghp_") + 20]
    out = redact_payload(cut)
    assert out.endswith(b'"token":"[REDACTED:key]')
    assert b"ghp_" not in out


def test_truncated_json_with_patterns_and_json_in_strings() -> None:
    inner = orjson.dumps({"email": "jane@example.com", "secret": "s3"}).decode()
    payload = result(inner + " " * 100)[:-30]
    out = redact_payload(payload)
    assert b"jane@example.com" not in out
    assert b"s3" not in out
    assert b'\\"secret\\":\\"[REDACTED:key]\\"' in out


def test_non_json_banner() -> None:
    payload = b"Listening; admin=bob@example.com password=hunter2\n"
    assert redact_payload(payload) == (
        b"Listening; admin=[REDACTED:email] password=[REDACTED:key]\n"
    )


def test_invalid_utf8_is_kept_around_a_redaction() -> None:
    payload = b'\xff\xfe{"password": "x", "b": "\xc3\x28"} bob@example.com \x80'
    out = redact_payload(payload)
    assert out == b'\xff\xfe{"password": "[REDACTED:key]", "b": "\xc3\x28"} [REDACTED:email] \x80'


def test_invalid_utf8_without_secrets_is_the_same_object() -> None:
    payload = b'{"a": "\xff\xfe"}'
    assert redact_payload(payload) is payload


def test_integers_past_64_bits_are_not_rewritten() -> None:
    payload = b'{"id": 123456789012345678901234, "params": {"password": "x"}}'
    out = redact_payload(payload)
    assert out == b'{"id": 123456789012345678901234, "params": {"password": "[REDACTED:key]"}}'


def test_deep_nesting_falls_back_to_text() -> None:
    depth = 600
    payload = b'{"a":' * depth + b'{"password":"x"}' + b"}" * depth
    out = redact_payload(payload)
    assert b'"password":"[REDACTED:key]"' in out
    assert b'"x"' not in out


# --- rules ----------------------------------------------------------------------------------


def test_metadata_only() -> None:
    rules = RedactionRules(metadata_only=True)
    out, report = redact_payload_with_report(call({"q": "anything"}), rules)
    assert out == METADATA_ONLY_PAYLOAD
    assert report == {"payload": 1}
    assert orjson.loads(out) == "[REDACTED:payload]"
    assert redact_payload_with_report(out, rules) == (out, {})


def test_report_counts_kinds() -> None:
    args = {"password": "x", "token": "y", "note": f"{fakes.EMAIL} {fakes.CARD_VISA}"}
    _, report = redact_payload_with_report(call(args))
    assert report == {"key": 2, "email": 1, "card": 1}


# --- the capture process's pre-scan of many payloads ----------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        DEFAULT_RULES,
        RedactionRules(extra_patterns=[("ticket", r"TCK-[0-9]{6}")]),
        RedactionRules(extra_patterns=[("digits", r"[0-9]{6}")]),  # no needle: always searched
    ],
)
def test_unchanged_payloads_agree_with_redact_payload(rules: RedactionRules) -> None:
    payloads = [
        b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"0001 xx"}}',
        call({"password": "hunter2"}),
        result("mail bob@example.com"),
        b'{"jsonrpc":"2.0","id":1,"result":{"n":123456}}',
        b"TCK-123456 in a banner",
        b'{"jsonrpc":"2.0","id":2,"result":{"card":"4111 1111 1111 1111"}}',
        b'{"jsonrpc":"2.0","id":3,"result":{}}',
        b"",
    ]
    for batch in (payloads, payloads * 3, payloads[:1]):
        flags = unchanged_payloads(batch, rules)
        assert len(flags) == len(batch)
        for payload, unchanged in zip(batch, flags, strict=True):
            assert unchanged == (rules.compiled.text.scan_payload(payload) is None)
            if unchanged:
                assert redact_payload(payload, rules) is payload


def test_unchanged_payloads_with_metadata_only() -> None:
    rules = RedactionRules(metadata_only=True)
    assert unchanged_payloads([b'{"jsonrpc":"2.0","id":1,"result":{}}'] * 3, rules) == [False] * 3
