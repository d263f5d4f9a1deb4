"""The JSONC parser: values, spans, comments, trailing commas, and errors with positions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from km.setup.jsonc import MAX_DEPTH, JsonArray, JsoncError, JsonObject, Scalar, parse, to_python

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES, st.sampled_from([None, 0, 2, "\t"]))
def test_any_json_parses_to_the_same_value(value: object, indent: int | str | None) -> None:
    text = json.dumps(value, indent=indent)
    root = parse(text)
    assert root is not None and to_python(root) == value


@given(JSON_VALUES)
def test_every_span_holds_its_value(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)

    def check(node: Scalar | JsonObject | JsonArray) -> None:
        assert json.loads(text[node.start : node.end]) == to_python(node)
        if isinstance(node, JsonObject):
            for member in node.members:
                assert json.loads(text[member.key_start : member.key_end]) == member.key
                check(member.value)
        elif isinstance(node, JsonArray):
            for item in node.items:
                check(item)

    root = parse(text)
    assert root is not None
    check(root)


def test_comments_and_trailing_commas() -> None:
    text = """\ufeff// settings
    {
      /* block
         comment */ "a": [1, 2,], // after
      "b": {"c": "// not a comment",},
    }
    """
    root = parse(text)
    assert root is not None
    assert to_python(root) == {"a": [1, 2], "b": {"c": "// not a comment"}}


def test_only_comments_is_no_document() -> None:
    assert parse("  // nothing here\n /* at all */ ") is None


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "expected ',' or '}'"),
        ('{"a": }', 1, 7, "expected a value"),
        ('{"a": "x\n"}', 1, 7, "unterminated string"),
        ("[1, 2] 3", 1, 8, "unexpected text after the document"),
        ("{/* open", 1, 2, "unterminated comment"),
        ("{'a': 1}", 1, 2, "unexpected character"),
        ("{1: 1}", 1, 2, "expected a string key or '}'"),
        ("[nul]", 1, 2, "unexpected character"),
        ("[01x]", 1, 2, "invalid number"),
    ],
)
def test_errors_say_where(text: str, line: int, column: int, reason: str) -> None:
    with pytest.raises(JsoncError) as caught:
        parse(text)
    assert (caught.value.line, caught.value.column, caught.value.reason) == (line, column, reason)
    assert f"line {line}, column {column}" in str(caught.value)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(JsoncError, match="nested deeper"):
        parse("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))


def test_duplicate_keys_last_wins() -> None:
    root = parse('{"a": 1, "a": 2}')
    assert isinstance(root, JsonObject)
    assert root.get("a") == Scalar(14, 15, 2)
