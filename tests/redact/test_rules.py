"""`RedactionRules`: configuration, validation with typed errors, rules as values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from km.errors import KmError
from km.redact import (
    DEFAULT_KEYS,
    DEFAULT_RULES,
    RedactionRuleError,
    RedactionRules,
    redact_payload,
    redact_text,
)


def call(arguments: dict[str, Any]) -> bytes:
    msg = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"arguments": arguments}}
    return orjson.dumps(msg)


def test_extra_keys_and_patterns() -> None:
    rules = RedactionRules(extra_keys={"pin"}, extra_patterns=[("ticket", r"TCK-[0-9]{6}")])
    out = orjson.loads(redact_payload(call({"cardPin": 1234, "note": "TCK-123456"}), rules))
    assert out["params"]["arguments"] == {"cardPin": "[REDACTED:key]", "note": "[REDACTED:ticket]"}
    # a pattern without needles still leaves the fast path to payloads it does not match
    payload = call({"q": "x"})
    assert redact_payload(payload, rules) is payload


def test_extra_pattern_group_v_is_the_part_replaced() -> None:
    rules = RedactionRules(extra_patterns=[("pin", r"(?i)\bpin (?P<v>[0-9]{4})\b")])
    assert redact_text("PIN 1234 ok", rules) == "PIN [REDACTED:pin] ok"
    assert redact_text(redact_text("PIN 1234 ok", rules), rules) == "PIN [REDACTED:pin] ok"


def test_defaults_are_the_documented_ones() -> None:
    assert RedactionRules() == DEFAULT_RULES
    assert {"password", "token", "api_key", "authorization", "cookie", "session"} <= DEFAULT_KEYS
    assert not DEFAULT_RULES.metadata_only


@pytest.mark.parametrize(
    ("kwargs", "offending"),
    [
        ({"extra_patterns": [("ticket", "TCK-(")]}, "TCK-("),
        ({"extra_patterns": [("ticket", "x*")]}, "x*"),
        ({"extra_patterns": [("ticket", r"\[REDACTED")]}, r"\[REDACTED"),
        ({"extra_patterns": [("Ticket!", "x")]}, "Ticket!"),
        ({"extra_keys": {"__"}}, "__"),
        ({"kinds": {"email", "phone"}}, "phone"),
    ],
)
def test_bad_rules_raise_a_typed_error(kwargs: dict[str, Any], offending: str) -> None:
    with pytest.raises(RedactionRuleError) as info:
        RedactionRules(**kwargs)
    assert isinstance(info.value, KmError)
    assert info.value.rule == offending
    assert offending in str(info.value)


def test_rules_are_hashable_values() -> None:
    assert RedactionRules(extra_keys={"pin"}) == RedactionRules(extra_keys=frozenset({"pin"}))
    assert hash(RedactionRules()) == hash(DEFAULT_RULES)
    assert RedactionRules(metadata_only=True) != DEFAULT_RULES
