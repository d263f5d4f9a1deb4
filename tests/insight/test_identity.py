"""target_of: what each request method acts on."""

from __future__ import annotations

import pytest

from km.insight.identity import MAX_TARGET_CHARS, TARGETED, target_of


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("tools/call", {"name": "get_time", "arguments": {}}, "get_time"),
        ("prompts/get", {"name": "simple_prompt"}, "simple_prompt"),
        ("resources/read", {"uri": "file:///tmp/a.txt"}, "file:///tmp/a.txt"),
        ("resources/subscribe", {"uri": "test://static/1"}, "test://static/1"),
        ("resources/unsubscribe", {"uri": "test://static/1"}, "test://static/1"),
        (
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": ""}},
            "ref/prompt:p",
        ),
        (
            "completion/complete",
            {"ref": {"type": "ref/resource", "uri": "test://{id}"}},
            "ref/resource:test://{id}",
        ),
    ],
)
def test_targets(method: str, params: object, expected: str) -> None:
    assert method in TARGETED
    assert target_of(method, params) == expected


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", {}),  # no name
        ("tools/call", {"name": 7}),  # not a string
        ("tools/call", {"name": ""}),
        ("tools/call", None),
        ("tools/call", ["get_time"]),
        ("prompts/get", {"name": None}),
        ("resources/read", {"name": "x"}),
        ("completion/complete", {"ref": "ref/prompt:p"}),
        ("completion/complete", {"ref": {"type": "ref/other", "name": "p"}}),
        ("completion/complete", {"ref": {"type": "ref/prompt"}}),
        ("tools/list", {"cursor": "x"}),
        ("initialize", {"name": "x"}),
        ("notifications/progress", {"name": "x"}),
        (None, {"name": "x"}),
    ],
)
def test_no_target(method: str | None, params: object) -> None:
    assert target_of(method, params) is None


def test_long_target_is_cut() -> None:
    got = target_of("tools/call", {"name": "x" * 5000})
    assert got is not None and len(got) == MAX_TARGET_CHARS
