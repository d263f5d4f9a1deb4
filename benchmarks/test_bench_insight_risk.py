"""Micro-benchmarks of the insight core's per-call analysis and of a large tool list.

Run with `.venv/bin/pytest benchmarks/test_bench_insight_risk.py --benchmark-enable`. Goals
(issue 11): a typical `tools/call` exchange (assess_call + content_tokens of the request and
of the response) <= 20 us; a 200-tool `tools/list` with token counts and the poisoning scan
<= 50 ms. Baselines in the same groups: `orjson.loads` of the same two payloads (what any
analysis pays to look inside them) and, for the list, `orjson.dumps` of every tool.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from km.insight.risk import assess_call
from km.insight.tokens import content_tokens, tool_list_tokens, warm

READ_TEXT_FILE: dict[str, Any] = {
    "name": "read_text_file",
    "title": "Read Text File",
    "description": (
        "Read the complete contents of a file from the file system as text. Handles various "
        "text encodings and provides detailed error messages if the file cannot be read. Use "
        "this tool when you need to examine the contents of a single file. Use the 'head' "
        "parameter to read only the first N lines of a file, or the 'tail' parameter to read "
        "only the last N lines of a file. Only works within allowed directories."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "tail": {"type": "number", "description": "If provided, returns only the last N lines"},
            "head": {
                "type": "number",
                "description": "If provided, returns only the first N lines",
            },
        },
        "required": ["path"],
    },
    "annotations": {"readOnlyHint": True, "openWorldHint": False},
}
ARGUMENTS = {"path": "/home/user/project/README.md", "head": 20}
ROOTS = ("file:///home/user/project",)
REQUEST = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 12,
        "method": "tools/call",
        "params": {"name": "read_text_file", "arguments": ARGUMENTS},
    }
)
RESPONSE_TEXT = (
    "# project\n\nA small library that parses configuration files and reports what changed.\n\n"
    "## Install\n\n```sh\npip install project\n```\n\n## Use\n\n```python\nimport project\n"
    "changes = project.diff('old.toml', 'new.toml')\nfor change in changes:\n    print(change)\n"
    "```\n\nEach change has a `path`, an `old` and a `new` value. See docs/ for the details.\n"
)
RESPONSE = orjson.dumps(
    {"jsonrpc": "2.0", "id": 12, "result": {"content": [{"type": "text", "text": RESPONSE_TEXT}]}}
)


def exchange() -> int:
    risk = assess_call(READ_TEXT_FILE, ARGUMENTS, roots=ROOTS)
    asked = content_tokens("request", "tools/call", REQUEST) or 0
    answered = content_tokens("response", "tools/call", RESPONSE) or 0
    return risk.score + asked + answered


def parse_only() -> int:
    return len(orjson.loads(REQUEST)) + len(orjson.loads(RESPONSE))


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    warm()  # the encoding loads once per process; not part of any figure


@pytest.mark.parametrize(
    "name",
    ["exchange", "assess_call", "tokens-request", "tokens-response", "baseline-orjson-loads"],
)
def test_tools_call_exchange(benchmark: BenchmarkFixture, name: str) -> None:
    benchmark.group = f"tools/call exchange ({len(REQUEST)} B request, {len(RESPONSE)} B response)"
    benchmark.extra_info["goal_us"] = 20 if name == "exchange" else None
    functions = {
        "exchange": exchange,
        "assess_call": lambda: assess_call(READ_TEXT_FILE, ARGUMENTS, roots=ROOTS).score,
        "tokens-request": lambda: content_tokens("request", "tools/call", REQUEST),
        "tokens-response": lambda: content_tokens("response", "tools/call", RESPONSE),
        "baseline-orjson-loads": parse_only,
    }
    result = benchmark(functions[name])
    assert result is not None


def _tool(i: int) -> dict[str, Any]:
    """One of 200 realistic tools: a GitHub/cloud-API-like server's, ~1 KB of JSON each."""
    verb = ("get", "list", "create", "update", "delete", "search", "run", "merge")[i % 8]
    noun = ("issue", "pull_request", "branch", "workflow", "release", "comment", "file")[i % 7]
    properties: dict[str, Any] = {
        "owner": {"type": "string", "description": "Repository owner (user or organization)"},
        "repo": {"type": "string", "description": "Repository name"},
    }
    for j in range(i % 5 + 1):
        properties[f"option_{j}"] = {
            "type": ("string", "number", "boolean")[j % 3],
            "description": f"Option {j} of {verb} {noun}: narrows what the call returns or does",
        }
    properties["state"] = {"type": "string", "enum": ["open", "closed", "all"]}
    return {
        "name": f"{verb}_{noun}_{i}",
        "description": (
            f"{verb.capitalize()} a {noun.replace('_', ' ')} in a GitHub repository. Returns the "
            f"{noun.replace('_', ' ')} with its number, title, state, author, labels and dates. "
            "Requires push access for changes; read access is enough to look. Results are "
            "paginated: pass `page` and `perPage` (max 100) to walk them."
        ),
        "inputSchema": {
            "type": "object",
            "properties": properties,
            "required": ["owner", "repo"],
        },
        "annotations": {"readOnlyHint": verb in ("get", "list", "search")},
    }


TOOLS = [_tool(i) for i in range(200)]


def test_tool_list_200(benchmark: BenchmarkFixture) -> None:
    benchmark.group = f"200-tool tools/list ({len(orjson.dumps(TOOLS)) // 1024} KiB)"
    benchmark.extra_info["goal_ms"] = 50
    assert benchmark(tool_list_tokens, TOOLS) > 200 * 100


def test_tool_list_200_with_poisoning(benchmark: BenchmarkFixture) -> None:
    poisoning = pytest.importorskip("km.insight.poisoning")  # helper insight-poison's module
    benchmark.group = f"200-tool tools/list ({len(orjson.dumps(TOOLS)) // 1024} KiB)"
    benchmark.extra_info["goal_ms"] = 50

    def analyse() -> int:
        return tool_list_tokens(TOOLS) + len(poisoning.scan_tools(TOOLS))

    assert benchmark(analyse) > 0


def test_tool_list_200_baseline_dumps(benchmark: BenchmarkFixture) -> None:
    benchmark.group = f"200-tool tools/list ({len(orjson.dumps(TOOLS)) // 1024} KiB)"
    assert benchmark(lambda: sum(len(orjson.dumps(t)) for t in TOOLS)) > 0
