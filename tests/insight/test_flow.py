"""Capabilities, the toxic-flow rule (R701), and the risk core over the tool definitions of
real MCP servers (fetched from them with the official SDK, not copied)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from km.insight.findings import FLOW, HIGH, at_least
from km.insight.risk import FlowTracker, assess_call, tool_capabilities, toxic_flow
from km.insight.risk_rules import PRIVATE_DATA, SENDS_OUT, UNTRUSTED_CONTENT
from km.insight.tokens import tool_list_tokens

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "tests" / "peers" / "node_modules" / ".bin"


def tool(name: str, description: str = "", **annotations: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "description": description}
    if annotations:
        out["annotations"] = annotations
    return out


READ_FILE = tool("read_file", "Read the complete contents of a file from the file system.")
FETCH = tool("fetch", "Fetches a URL from the internet and extracts its contents as markdown.")
SEND_EMAIL = tool("send_email", "Send an email to a recipient.")
GITHUB_ISSUE = tool("get_issue", "Get the details of an issue in a GitHub repository.")


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (READ_FILE, {PRIVATE_DATA}),
        (FETCH, {UNTRUSTED_CONTENT, SENDS_OUT}),
        (SEND_EMAIL, {SENDS_OUT}),  # sends; reads no inbox
        (
            tool("list_emails", "List emails in the user's inbox."),
            {PRIVATE_DATA, UNTRUSTED_CONTENT},
        ),
        (GITHUB_ISSUE, {PRIVATE_DATA, UNTRUSTED_CONTENT}),
        (tool("run_command", "Run a shell command."), {PRIVATE_DATA, SENDS_OUT}),
        (tool("lookup", "", openWorldHint=True), {UNTRUSTED_CONTENT, SENDS_OUT}),
        (tool("get_current_time", "Get the current time in a timezone."), set()),
        (tool("add", "Adds two numbers."), set()),
    ],
)
def test_capabilities(definition: dict[str, Any], expected: set[str]) -> None:
    assert tool_capabilities(definition) == expected


def test_capabilities_of_odd_definitions_are_empty_or_sane() -> None:
    assert tool_capabilities({}) == frozenset()
    assert tool_capabilities({"name": 3, "description": ["x"], "annotations": "y"}) == frozenset()
    assert tool_capabilities("nope") == frozenset()  # type: ignore[arg-type]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=15,
)
DEFINITION = st.fixed_dictionaries(
    {},
    optional={
        "name": JSON | st.sampled_from(["read_file", "fetch", "send_email", "run_command"]),
        "description": JSON,
        "annotations": JSON | st.fixed_dictionaries({"openWorldHint": JSON}),
    },
)


@settings(max_examples=200, deadline=None)
@given(tools=st.lists(DEFINITION | JSON, max_size=6))
def test_never_raises(tools: list[Any]) -> None:
    for definition in tools:
        assert tool_capabilities(definition) <= {PRIVATE_DATA, UNTRUSTED_CONTENT, SENDS_OUT}
    finding = toxic_flow(tools)
    assert finding is None or finding.kind == FLOW


def test_the_trifecta_gives_one_flow_finding_naming_the_tools() -> None:
    finding = toxic_flow([READ_FILE, GITHUB_ISSUE, SEND_EMAIL], server="s")
    assert finding is not None
    assert (finding.rule, finding.kind, finding.severity, finding.server) == (
        "R701",
        FLOW,
        HIGH,
        "s",
    )
    assert finding.tool == "send_email"  # the call that completed it
    for name in ("read_file", "get_issue", "send_email"):
        assert name in finding.message and name in finding.excerpt


@pytest.mark.parametrize(
    "tools",
    [
        [],
        [READ_FILE, SEND_EMAIL],  # no untrusted content
        [FETCH, SEND_EMAIL],  # no private data
        [READ_FILE, READ_FILE, tool("list_directory", "List a directory.")],
        [tool("get_current_time"), tool("add")],
    ],
)
def test_no_flow_without_all_three(tools: list[dict[str, Any]]) -> None:
    assert toxic_flow(tools) is None


def test_tracker_reports_once_and_keeps_the_names() -> None:
    tracker = FlowTracker(server="srv")
    assert tracker.observe(READ_FILE) is None
    assert tracker.observe({"name": "read_file"}) is None  # same name, counted once
    first = tracker.observe(FETCH)
    assert first is not None and first.tool == "fetch"
    assert tracker.observe(SEND_EMAIL) is None  # already reported
    later = tracker.finding()
    assert later is not None and "send_email" in later.message
    assert tracker.complete


# --- real servers -------------------------------------------------------------------------

SERVERS = {
    "filesystem": [str(BIN / "mcp-server-filesystem"), str(ROOT)],
    "memory": [str(BIN / "mcp-server-memory")],
    "everything": [str(BIN / "mcp-server-everything"), "stdio"],
    "time": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"],
    "git": [sys.executable, "-m", "mcp_server_git", "--repository", str(ROOT)],
}


async def _list_tools(command: list[str]) -> list[dict[str, Any]]:
    params = StdioServerParameters(command=command[0], args=command[1:])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        tools = await asyncio.wait_for(client.list_tools(), 30)
        return [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools.tools]


@pytest.fixture(scope="module")
def real_tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    async def all_servers() -> dict[str, list[dict[str, Any]]]:
        return {name: await _list_tools(cmd) for name, cmd in SERVERS.items()}

    return asyncio.run(all_servers())


def test_real_tools_have_sensible_capabilities(real_tools: dict[str, list[dict[str, Any]]]) -> None:
    by_name = {(s, t["name"]): t for s, tools in real_tools.items() for t in tools}
    assert tool_capabilities(by_name[("filesystem", "read_text_file")]) == {PRIVATE_DATA}
    assert tool_capabilities(by_name[("memory", "read_graph")]) == {PRIVATE_DATA}
    assert tool_capabilities(by_name[("git", "git_log")]) == {PRIVATE_DATA}
    assert tool_capabilities(by_name[("time", "get_current_time")]) == frozenset()
    for server in ("filesystem", "memory", "time", "git"):
        assert toxic_flow(real_tools[server]) is None, server  # none of them reaches out


def test_real_tools_called_plainly_are_at_most_medium(
    real_tools: dict[str, list[dict[str, Any]]],
) -> None:
    for server, tools in real_tools.items():
        for definition in tools:
            risk = assess_call(definition, {"path": str(ROOT / "README.md")}, roots=[str(ROOT)])
            assert not at_least(risk.level, HIGH), (server, definition["name"], risk)


def test_real_read_only_tools_score_nothing_from_their_definition(
    real_tools: dict[str, list[dict[str, Any]]],
) -> None:
    for tools in real_tools.values():
        for definition in tools:
            if definition.get("annotations", {}).get("readOnlyHint") is True:
                assert assess_call(definition, {}).reasons == (), definition["name"]


def test_real_destructive_tools_are_flagged(real_tools: dict[str, list[dict[str, Any]]]) -> None:
    memory = {t["name"]: t for t in real_tools["memory"]}
    rules = {f.rule for f in assess_call(memory["delete_entities"], {"entityNames": ["a"]}).reasons}
    assert {"R101", "R103"} <= rules
    filesystem = {t["name"]: t for t in real_tools["filesystem"]}
    risk = assess_call(filesystem["write_file"], {"path": "~/.bashrc", "content": "x"})
    assert {"R101", "R204"} <= {f.rule for f in risk.reasons}
    assert risk.level == HIGH


def test_real_tool_lists_cost_tokens(real_tools: dict[str, list[dict[str, Any]]]) -> None:
    for server, tools in real_tools.items():
        total = tool_list_tokens(tools)
        assert total > 50 * len(tools) // 2, server  # every real tool has a description
        assert total == sum(tool_list_tokens([t]) for t in tools)
