"""Malformed input gives findings, never an exception: non-object entries, bad or duplicate
names, a 1 MB description, schemas nested 10,000 deep, huge string counts, any JSON value."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from km.insight.poisoning import MAX_DEPTH, scan_tool, scan_tools


def rules(findings: list[Any]) -> set[str]:
    return {f.rule for f in findings}


def test_non_object_entries_are_findings() -> None:
    findings = scan_tools([42, None, "read_file", [1], {"name": "ok", "description": "Fine."}])
    bad = [f for f in findings if f.rule == "P190"]
    assert [f.tool for f in bad] == ["#0", "#1", "#2", "#3"]
    assert "entry 1 is null" in bad[1].message


def test_missing_and_non_string_names() -> None:
    findings = scan_tools([{"description": "x"}, {"name": 7}, {"name": ["a"]}])
    assert [f.tool for f in findings if f.rule == "P190"] == ["#0", "#1", "#2"]
    assert scan_tool({"description": "no name"})[0].tool is None


def test_non_object_schema_and_non_string_description() -> None:
    findings = scan_tools([{"name": "t", "description": 5, "inputSchema": "nope"}])
    assert {f.field for f in findings if f.rule == "P190"} == {"description", "inputSchema"}


def test_duplicate_names() -> None:
    findings = scan_tools([{"name": "read"}, {"name": "read"}, {"name": "write"}])
    dup = [f for f in findings if f.rule == "P191"]
    assert len(dup) == 1 and dup[0].tool == "read" and "2 definitions" in dup[0].message


def test_not_a_list() -> None:
    assert rules(scan_tools({"tools": []})) == {"P190"}  # type: ignore[arg-type]


def test_one_megabyte_description() -> None:
    big = "Reads files. " * 80_000
    findings = scan_tools([{"name": "big", "description": big}])
    assert rules(findings) == {"P181"}
    assert "1,040,000 characters" in findings[0].message


def test_schema_nested_ten_thousand_deep() -> None:
    schema: dict[str, Any] = {"type": "string", "description": "<IMPORTANT>deep</IMPORTANT>"}
    for _ in range(10_000):
        schema = {"type": "object", "properties": {"x": schema}}
    findings = scan_tools([{"name": "deep", "description": "Fine.", "inputSchema": schema}])
    assert rules(findings) == {"P192"}
    assert f"deeper than {MAX_DEPTH}" in findings[0].message


def test_self_referencing_object_stops_at_the_depth_limit() -> None:
    loop: dict[str, Any] = {"name": "loop"}
    loop["inputSchema"] = loop
    assert "P192" in rules(scan_tools([loop]))


def test_too_many_strings() -> None:
    enum = [f"v{i}" for i in range(30_000)]
    findings = scan_tools([{"name": "wide", "inputSchema": {"type": "string", "enum": enum}}])
    assert "P192" in rules(findings)


def test_non_string_keys_and_odd_values() -> None:
    tool = {"name": "odd", 1: "x", "inputSchema": {"properties": {2: {}, "a": None}}, "t": 1.5}
    assert scan_tools([tool]) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=5))
def test_any_json_never_raises(tools: list[Any]) -> None:
    for finding in scan_tools(tools):
        assert finding.kind == "poisoning" and finding.severity and finding.message


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.dictionaries(st.text(), st.text(), max_size=5))
def test_any_strings_never_raise(name: str, description: str, props: dict[str, str]) -> None:
    schema = {"type": "object", "properties": {k: {"description": v} for k, v in props.items()}}
    scan_tools([{"name": name, "description": description, "inputSchema": schema}])
