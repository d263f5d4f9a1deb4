"""`name = value` pairs in free text: env dumps, headers, YAML, code, JSON that did not parse."""

from __future__ import annotations

import pytest

from km.redact import redact_text, redact_text_with_report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter2", "password=[REDACTED:key]"),
        ("DB_PASSWORD=hunter2 HOME=/root", "DB_PASSWORD=[REDACTED:key] HOME=/root"),
        ("export GITHUB_TOKEN=abc123", "export GITHUB_TOKEN=[REDACTED:key]"),
        ("?access_token=abc&page=2", "?access_token=[REDACTED:key]&page=2"),
        ("--api-key=abc --verbose", "--api-key=[REDACTED:key] --verbose"),
        ("Password: correct horse battery\nUser: bob", "Password: [REDACTED:key]\nUser: bob"),
        ("Cookie: a=1; sid=2\nAccept: */*", "Cookie: [REDACTED:key]\nAccept: */*"),
        ("token: abc  \nnext", "token: [REDACTED:key]  \nnext"),
        ("secret = 'x y'", "secret = '[REDACTED:key]'"),
        ("{'password': 'x', 'user': 'bob'}", "{'password': '[REDACTED:key]', 'user': 'bob'}"),
        ('"api_key": "abc", "n": 1', '"api_key": "[REDACTED:key]", "n": 1'),
        ('"api_key":12345,"n":1', '"api_key":"[REDACTED:key]","n":1'),
        ('"auth": {"user": "a", "pw": "b"}, "n": 1', '"auth": "[REDACTED:key]", "n": 1'),
        ('"n": 1, "credentials": [1, [2]] }', '"n": 1, "credentials": "[REDACTED:key]" }'),
        ("'password' => 'x'", "'password' => '[REDACTED:key]'"),
        ("AUTH:x", "AUTH:[REDACTED:key]"),
        ("line\\nauth: xyz\\nnext", "line\\nauth: [REDACTED:key]\\nnext"),
        (
            'text {\\"password\\": \\"hunter2\\", \\"a\\": 1}',
            'text {\\"password\\": \\"[REDACTED:key]\\", \\"a\\": 1}',
        ),
    ],
)
def test_pairs(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=500",
        "max_tokens: 500, tokens_used: 20",
        "token_count=3",
        "author: Jane",
        "OAuth: enabled",
        "tokenizer=cl100k",
        "the session was long",
        "password",
        "password=",
        "password: [REDACTED:key]",
        "progressToken: 7",
    ],
)
def test_pairs_kept(text: str) -> None:
    assert redact_text(text) is text


def test_value_cut_by_the_end_of_the_text() -> None:
    assert redact_text('{"password": "hunt') == '{"password": "[REDACTED:key]'
    assert redact_text('{"auth": {"user": "a", "pw": "b') == '{"auth": "[REDACTED:key]"'


def test_name_inside_a_single_quoted_string() -> None:
    text = "curl -H 'Authorization: Basic abc' -H 'X-Api-Key: k1' url"
    assert redact_text(text) == (
        "curl -H 'Authorization: [REDACTED:key]' -H 'X-Api-Key: [REDACTED:key]' url"
    )


def test_report_counts() -> None:
    out, report = redact_text_with_report("a=1 password=x token=y mail bob@example.com")
    assert out == "a=1 password=[REDACTED:key] token=[REDACTED:key] mail [REDACTED:email]"
    assert report == {"key": 2, "email": 1}


def test_json_text_in_a_string_is_walked() -> None:
    text = '{"user": {"email": "bob@example.com", "token": 5}, "max_tokens": 9}'
    out = redact_text(text)
    assert out == ('{"user":{"email":"[REDACTED:email]","token":"[REDACTED:key]"},"max_tokens":9}')


def test_long_runs_of_name_characters_are_not_names() -> None:
    blob = "A" * 300 + "token=" + "B" * 10
    assert redact_text(blob) is blob
