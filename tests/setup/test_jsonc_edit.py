"""Wrapping and unwrapping servers as text edits: exact round trips, idempotence, and no byte
touched outside a server's `command` and `args`."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from km.setup.jsonc import JsonArray, JsonObject, parse, to_python
from km.setup.jsonc_edit import apply_edits, find_servers, plan_unwrap, plan_wrap
from km.setup.wrap import wrap

KM = "/home/me/.local/bin/km"
NAMES = st.text(min_size=1, max_size=12)
ARGS = st.lists(st.text(max_size=10), max_size=4)
STDIO = st.fixed_dictionaries(
    {"command": st.text(min_size=1, max_size=12).filter(lambda c: c not in ("km", "km.exe"))},
    optional={"args": ARGS, "env": st.dictionaries(st.text(max_size=5), st.text(max_size=5))},
)
REMOTE = st.one_of(
    st.fixed_dictionaries({"url": st.just("https://example.com/mcp")}),
    st.fixed_dictionaries({"type": st.sampled_from(["sse", "http"]), "command": st.just("x")}),
    st.fixed_dictionaries({"serverUrl": st.just("https://example.com/sse")}),
)
SERVERS = st.dictionaries(NAMES, st.one_of(STDIO, REMOTE), max_size=5)


@st.composite
def configs(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A Claude-Desktop-like config in any layout, with comments at the end of some lines."""
    servers = draw(SERVERS)
    document = {"before": draw(st.integers()), "mcpServers": servers, "after": [1, {"x": None}]}
    text = json.dumps(document, indent=draw(st.sampled_from([None, 0, 1, 2, 4, "\t"])),
                      ensure_ascii=draw(st.booleans()))  # fmt: skip
    lines = text.split("\n")
    commented = draw(st.sets(st.integers(0, len(lines) - 1)))
    text = "\n".join(line + (" // note" if i in commented else "") for i, line in enumerate(lines))
    return text, servers, document


@given(configs())
def test_wrapped_servers_run_km_and_nothing_else_changes(config: tuple[str, Any, Any]) -> None:
    text, servers, document = config
    wrapped = apply_edits(text, plan_wrap(text, KM).edits)
    root = parse(wrapped)
    assert root is not None
    result = to_python(root)
    assert isinstance(result, dict)
    expected = json.loads(json.dumps(servers))
    for name, entry in expected.items():
        if "url" not in entry and "serverUrl" not in entry and "type" not in entry:
            entry["command"], entry["args"] = wrap(
                name, entry["command"], entry.get("args", []), KM
            )
    assert result["mcpServers"] == expected
    assert list(result["mcpServers"]) == list(servers)  # order of servers kept
    assert {k: v for k, v in result.items() if k != "mcpServers"} == {
        k: v for k, v in json.loads(json.dumps(document)).items() if k != "mcpServers"
    }


@given(configs())
def test_unwrap_gives_back_the_original_bytes(config: tuple[str, Any, Any]) -> None:
    text, _, _ = config
    wrapped = apply_edits(text, plan_wrap(text, KM).edits)
    assert apply_edits(wrapped, plan_unwrap(wrapped).edits) == text


@given(configs())
def test_wrapping_twice_changes_nothing(config: tuple[str, Any, Any]) -> None:
    text, _, _ = config
    wrapped = apply_edits(text, plan_wrap(text, KM).edits)
    again = plan_wrap(wrapped, "/other/km")
    assert not again.changes
    assert {o.action for o in again.outcomes} <= {"already wrapped", "remote"}


@given(configs())
def test_edits_touch_only_the_command_and_args_of_stdio_servers(
    config: tuple[str, Any, Any],
) -> None:
    text, _, _ = config
    allowed = []
    for server in find_servers(text):
        entry = server.member.value
        if server.kind != "stdio":
            continue
        assert isinstance(entry, JsonObject)
        for key in ("command", "args"):
            value = entry.get(key)
            if value is not None:
                allowed.append((value.start, value.end))
    for edit in plan_wrap(text, KM).edits:
        assert any(start <= edit.start <= edit.end <= end for start, end in allowed), edit
    wrapped = apply_edits(text, plan_wrap(text, KM).edits)
    for edit in plan_unwrap(wrapped).edits:  # unwrapping stays inside command..args as well
        assert wrapped[edit.start : edit.end].count("mcpServers") == 0


def test_jsonc_layout_and_comments_survive() -> None:
    text = """{
  // VS Code settings
  "editor.fontSize": 14,
  "mcp": {
    "servers": {
      "time": {
        "type": "stdio",
        "command": "uvx", // the runner
        "args": [
          "mcp-server-time", /* tz */
          "--local-timezone=UTC",
        ],
      },
      "docs": {"type": "http", "url": "https://example.com/mcp"},
    },
  },
}
"""
    wrapped = apply_edits(text, plan_wrap(text, "km").edits)
    assert wrapped == text.replace('"uvx"', '"km"').replace(
        '          "mcp-server-time",',
        '          "--name",\n          "time",\n          "--",\n          "uvx",\n'
        '          "mcp-server-time",',
    )
    assert apply_edits(wrapped, plan_unwrap(wrapped).edits) == text


def test_a_server_without_args_gets_them_after_its_command() -> None:
    text = '{\n  "mcpServers": {\n    "time": {\n      "command": "mcp-server-time"\n    }\n  }\n}'
    wrapped = apply_edits(text, plan_wrap(text, "km").edits)
    assert '"command": "km",\n      "args": ["--name", "time", "--", "mcp-server-time"]' in wrapped
    assert apply_edits(wrapped, plan_unwrap(wrapped).edits) == text


def test_claude_code_projects_are_wrapped_too() -> None:
    text = json.dumps({
        "numStartups": 3,
        "mcpServers": {"a": {"command": "x"}},
        "projects": {"/src/app": {"mcpServers": {"b": {"command": "y", "args": ["1"]}}}},
    })  # fmt: skip
    plan = plan_wrap(text, "km")
    assert [(o.table, o.name, o.action) for o in plan.outcomes] == [
        ("mcpServers", "a", "wrapped"),
        ("projects[/src/app].mcpServers", "b", "wrapped"),
    ]


def test_servers_km_cannot_wrap_are_reported_not_touched() -> None:
    text = json.dumps({"mcpServers": {
        "hand": {"command": "km", "args": ["npx", "x"]},
        "list": ["not", "an", "object"],
        "nocmd": {"args": ["x"]},
        "badargs": {"command": "x", "args": "y"},
        "numargs": {"command": "x", "args": [1]},
    }})  # fmt: skip
    plan = plan_wrap(text, "km")
    assert not plan.changes
    assert [(o.action, o.reason) for o in plan.outcomes] == [
        ("uses km", ""),
        ("skipped", "not an object"),
        ("skipped", "no command"),
        ("skipped", "args is not a list"),
        ("skipped", "args has a value that is not a string"),
    ]
    assert not plan_unwrap(text).changes


def test_unwrap_after_the_user_edited_other_fields_keeps_their_edits() -> None:
    text = '{"mcpServers": {"a": {"command": "x", "args": ["1"], "env": {}}}}'
    wrapped = apply_edits(text, plan_wrap(text, "km").edits)
    edited = wrapped.replace('"env": {}', '"env": {"TOKEN": "t"}')
    restored = apply_edits(edited, plan_unwrap(edited).edits)
    assert restored == text.replace('"env": {}', '"env": {"TOKEN": "t"}')


def test_array_nodes_are_found_for_args() -> None:
    root = parse('{"args": [ "a" ]}')
    assert isinstance(root, JsonObject) and isinstance(root.get("args"), JsonArray)
