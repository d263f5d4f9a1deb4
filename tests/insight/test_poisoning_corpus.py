"""The detector against the project's own corpus (tests/insight/data/poisoning, sources in its
README): every poisoned definition gets a finding of at least `medium`, no benign one does,
judged alone and as one list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from km.insight.findings import at_least
from km.insight.poisoning import scan_tools

DATA = Path(__file__).parent / "data" / "poisoning"


def _load(name: str) -> list[dict[str, Any]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


POISONED = _load("poisoned.jsonl")
BENIGN = _load("benign.jsonl")


def _loud(tool: dict[str, Any]) -> list[str]:
    return [f"{f.rule}:{f.severity}" for f in scan_tools([tool]) if at_least(f.severity, "medium")]


def test_corpus_is_what_the_readme_says() -> None:
    assert len(POISONED) == 39 and len(BENIGN) == 66
    assert all(item["source"] for item in POISONED)
    kinds = {item["kind"] for item in POISONED}
    assert {"exfiltration", "shadowing", "hidden-instruction", "schema-poisoning"} <= kinds


@pytest.mark.parametrize("item", POISONED, ids=[i["id"] for i in POISONED])
def test_poisoned_definition_is_detected(item: dict[str, Any]) -> None:
    assert _loud(item["tool"]), item["id"]


@pytest.mark.parametrize("item", BENIGN, ids=[i["id"] for i in BENIGN])
def test_benign_definition_has_no_finding_above_low(item: dict[str, Any]) -> None:
    assert _loud(item["tool"]) == []


def test_whole_list_gives_the_same_verdicts() -> None:
    tools = [i["tool"] for i in POISONED + BENIGN]
    flagged = {f.tool for f in scan_tools(tools) if at_least(f.severity, "medium")}
    assert flagged == {i["tool"]["name"] for i in POISONED}
