"""Canonical JSON, hashes and paginated listings, in memory."""

from __future__ import annotations

import orjson
import pytest

from km.insight.definitions import (
    MAX_PAGES,
    PROMPTS,
    TOOLS,
    ListAssembler,
    build_definitions,
    canonical_json,
    canonical_text,
    definition_hash,
    make_definition,
)

TOOL = {
    "name": "echo",
    "description": "Echoes back the input",
    "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}},
    "annotations": {"readOnlyHint": True},
}


def test_canonical_sorts_keys_and_keeps_only_definition_fields() -> None:
    noisy = {"_meta": {"x": 1}, "icons": [], **dict(reversed(list(TOOL.items())))}
    text = canonical_json(noisy)
    assert text == orjson.dumps(TOOL, option=orjson.OPT_SORT_KEYS).decode()
    assert "_meta" not in text and " " not in text.replace("Echoes back the input", "")


def test_hash_is_stable_and_changes_with_any_field() -> None:
    base = make_definition(TOOL)
    assert base.hash == make_definition(dict(reversed(list(TOOL.items())))).hash
    # A fixed value: the hash of a definition must not change between km versions.
    assert base.hash == definition_hash(canonical_json(TOOL))
    assert len(base.hash) == 64
    for field, value in [
        ("description", "Echoes back the input."),
        ("title", "Echo"),
        ("inputSchema", {"type": "object"}),
        ("outputSchema", {"type": "object"}),
        ("annotations", {"readOnlyHint": False}),
    ]:
        assert make_definition({**TOOL, field: value}).hash != base.hash, field
    assert make_definition({**TOOL, "_meta": {"v": 2}}).hash == base.hash


def test_hash_known_value() -> None:
    """The hash of a definition must not change between km versions (pins depend on it)."""
    import hashlib

    assert definition_hash('{"name":"a"}') == hashlib.sha256(b'{"name":"a"}').hexdigest()
    assert make_definition(TOOL).hash == (
        "a3d9d3a1bc2a2c1d7d0b7e9fd83181790e89270e37149c951d58cda6296a32d3"
    )


def test_deep_nesting_is_canonical_too() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(900):  # deeper than orjson will write, as deep as it will read
        child: dict[str, object] = {}
        node["b"] = child
        node["a"] = 1
        node = child
    text = canonical_text(deep)
    assert text.startswith('{"a":1,"b":{"a":1,"b":')
    assert orjson.loads(text) == deep
    d = make_definition({"name": "deep", "inputSchema": deep})
    assert d.hash == make_definition({"inputSchema": deep, "name": "deep"}).hash


def test_build_definitions_counts_bad_entries() -> None:
    entries: list[object] = [
        TOOL,
        {"name": 3},
        "nope",
        {"description": "no name"},
        TOOL,
        {"name": ""},
    ]
    defs, problems = build_definitions(entries)
    assert list(defs) == ["echo"]
    assert [p.code for p in problems] == [
        "bad-name",
        "not-an-object",
        "bad-name",
        "duplicate-name",
        "bad-name",
    ]


def _page(tools: list[object], cursor: str | None = None) -> dict[str, object]:
    result: dict[str, object] = {"tools": tools}
    if cursor is not None:
        result["nextCursor"] = cursor
    return result


def test_single_page() -> None:
    a = ListAssembler(TOOLS)
    done = a.page(None, _page([TOOL]))
    assert done is not None and list(done.definitions) == ["echo"] and done.pages == 1
    assert done.problems == ()


def test_pages_put_together_by_cursor() -> None:
    a = ListAssembler(TOOLS)
    assert a.page(None, _page([{"name": "a"}], "c1")) is None
    assert a.page("c1", _page([{"name": "b"}], "c2")) is None
    done = a.page("c2", _page([{"name": "c"}]))
    assert done is not None
    assert list(done.definitions) == ["a", "b", "c"] and done.pages == 3
    # A new listing starts over.
    again = a.page(None, _page([{"name": "z"}]))
    assert again is not None and list(again.definitions) == ["z"]


def test_looping_cursor_ends_the_listing() -> None:
    a = ListAssembler(TOOLS)
    assert a.page(None, _page([{"name": "a"}], "c1")) is None
    assert a.page("c1", _page([{"name": "b"}], "c2")) is None
    done = a.page("c2", _page([{"name": "c"}], "c1"))  # back to c1: a loop
    assert done is not None and list(done.definitions) == ["a", "b", "c"]
    assert [p.code for p in done.problems] == ["cursor-loop"]
    # The client goes on following the loop: those pages are ignored, counted.
    for _ in range(5):
        assert a.page("c1", _page([{"name": "b"}], "c2")) is None
    assert a.ignored_pages == 5


def test_same_cursor_forever_is_a_loop() -> None:
    a = ListAssembler(TOOLS)
    assert a.page(None, _page([{"name": "a"}], "same")) is None
    done = a.page("same", _page([{"name": "a"}], "same"))
    assert done is not None and [p.code for p in done.problems] == ["cursor-loop", "duplicate-name"]


def test_page_limit() -> None:
    a = ListAssembler(TOOLS, max_pages=3)
    assert a.page(None, _page([{"name": "a"}], "1")) is None
    assert a.page("1", _page([{"name": "b"}], "2")) is None
    done = a.page("2", _page([{"name": "c"}], "3"))
    assert done is not None and [p.code for p in done.problems] == ["too-many-pages"]
    assert MAX_PAGES >= 100


@pytest.mark.parametrize(
    ("result", "code"),
    [
        (None, "not-an-object"),
        ([1, 2], "not-an-object"),
        ({"tools": {"a": 1}}, "not-a-list"),
        ({"tools": [], "nextCursor": 5}, "bad-cursor"),
    ],
)
def test_bad_results(result: object, code: str) -> None:
    done = ListAssembler(TOOLS).page(None, result)
    assert done is not None and code in [p.code for p in done.problems]


def test_unexpected_cursor_is_ignored() -> None:
    a = ListAssembler(TOOLS)
    assert a.page("never-given", _page([{"name": "a"}])) is None
    assert a.ignored_pages == 1


def test_prompts_kind() -> None:
    done = ListAssembler(PROMPTS).page(None, {"prompts": [{"name": "p", "arguments": []}]})
    assert done is not None and done.definitions["p"].canonical == '{"arguments":[],"name":"p"}'
