"""Poisoning scan of a realistic 200-tool `tools/list` (goal: well under 50 ms).

Run with `.venv/bin/pytest benchmarks/test_bench_insight_poisoning.py --benchmark-enable`.
The list cycles the project's own corpus (tests/insight/data/poisoning: 66 benign definitions
of popular servers' tools, one poisoned in twenty), each with a unique name and description.
Baseline in the same group: a naive keyword scan (lowercase every string, look for ten
keywords), the kind of check the detector replaces.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_benchmark.fixture import BenchmarkFixture

from km.insight.poisoning import scan_tools

DATA = Path(__file__).resolve().parent.parent / "tests" / "insight" / "data" / "poisoning"
KEYWORDS = (
    "<important>",
    "ignore",
    "secret",
    "password",
    "ssh",
    "send",
    "do not tell",
    "system",
    "instead",
    "always",
)


def _tools(count: int = 200, poisoned_every: int = 20) -> list[dict[str, Any]]:
    def load(name: str) -> list[dict[str, Any]]:
        lines = (DATA / name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["tool"] for line in lines if line.strip()]

    benign, poisoned = load("benign.jsonl"), load("poisoned.jsonl")
    tools = []
    for i in range(count):
        source = poisoned[i % len(poisoned)] if i % poisoned_every == 0 else benign[i % len(benign)]
        # a unique name and description each (a real list repeats only schema boilerplate)
        description = f"{source.get('description', '')} (variant {i})"
        tools.append({**source, "name": f"{source['name']}_{i}", "description": description})
    return tools


TOOLS = _tools()


def _strings(value: object) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def keyword_baseline(tools: list[dict[str, Any]]) -> int:
    hits = 0
    for tool in tools:
        for text in _strings(tool):
            lowered = text.lower()
            hits += sum(1 for k in KEYWORDS if k in lowered)
    return hits


def test_scan_200_tools(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "poisoning-200-tools"
    benchmark.extra_info["tools"] = len(TOOLS)
    benchmark.extra_info["json_bytes"] = len(json.dumps(TOOLS))
    findings = benchmark(scan_tools, TOOLS)
    assert {f.tool for f in findings if f.severity in ("high", "critical")}


def test_keyword_baseline_200_tools(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "poisoning-200-tools"
    assert benchmark(keyword_baseline, TOOLS) > 0
