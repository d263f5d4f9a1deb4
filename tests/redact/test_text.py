"""The needle scan behind the fast path, and pattern matching around JSON escapes and markers."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from km.redact import DEFAULT_RULES, redact_payload, redact_text
from km.redact.text import Scope
from tests.redact import fakes

TEXT = DEFAULT_RULES.compiled.text


@pytest.mark.parametrize(
    "payload",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search","arguments":'
        b'{"query":"language:python","page":1,"perPage":30}}}',
        b'{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"It is 14:05 UTC"}]}}',
        b'{"jsonrpc":"2.0","id":3,"result":{"ts":1715250000123,"n":[1,2,3]}}',  # no 13-digit run
    ],
)
def test_typical_payloads_take_the_fast_path(payload: bytes) -> None:
    assert TEXT.scan_payload(payload) is None
    assert redact_payload(payload) is payload


def test_scan_finds_needles_digits_and_escapes() -> None:
    scope = TEXT.scan_payload(b'{"a":"Bearer x","b":"4111 1111 1111 1111"}')
    assert scope == Scope(frozenset({"bearer"}), digits=True)
    assert TEXT.scan_payload(b'{"a":"\\u0040"}') == TEXT.everything
    assert TEXT.scan_payload(b'{"a":"https:\\/\\/x"}') == TEXT.everything
    assert TEXT.scan_payload(b'{"a":"caf\\u00e9"}') is None  # not ASCII: hides no needle


def test_a_large_payload_with_many_digits_is_not_searched_for_a_card() -> None:
    payload = orjson.dumps({"n": list(range(3000))})
    scope = TEXT.scan_payload(payload)
    assert scope is not None
    assert scope.digits
    assert redact_payload(payload) is payload


def test_narrow_keeps_what_a_string_holds() -> None:
    scope = Scope(frozenset({"@", "token"}), digits=True)
    assert scope.narrow("no secret here") is None
    assert scope.narrow("a@b") == Scope(frozenset({"@"}))
    assert scope.narrow("TOKEN 4111 1111 1111 1111") == Scope(frozenset({"token"}), digits=True)
    assert scope.narrow("\\u0040") is scope


def test_needs_structure() -> None:
    assert TEXT.needs_structure(Scope(frozenset({"token"})))
    assert TEXT.needs_structure(Scope(frozenset(), digits=True))
    assert TEXT.needs_structure(Scope(frozenset({"private key"})))
    assert not TEXT.needs_structure(Scope(frozenset({"@", "://", "eyj"})))


def test_redact_returns_the_same_object_when_nothing_matched() -> None:
    text = "mail me at home"
    assert TEXT.redact(text, Counter(), TEXT.everything) is text


def test_matches_touching_a_marker_are_skipped() -> None:
    # A first pass saw a secret where the marker is; the second pass must decide the same.
    for text in ("bob@example.com[REDACTED:card]", "[REDACTED:x]bob@example.com"):
        assert redact_text(text) is text


def test_escapes_in_json_text_end_words() -> None:
    text = f"a\\t{fakes.AWS_KEY_ID}\\r\\nb\\f{fakes.SLACK}"
    assert redact_text(text) == "a\\t[REDACTED:aws_access_key]\\r\\nb\\f[REDACTED:slack_token]"
