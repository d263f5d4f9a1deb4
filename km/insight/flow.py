"""Toxic flows: the capabilities of each tool, and the finding when one session used tools that
read private data, take in untrusted content and send data out (the "lethal trifecta": text
from the untrusted source can instruct the model to send the private data away).

Capabilities are judged from the definition alone (patterns in `km.insight.risk_rules`): the
words of the tool's name and the first sentence of its description, and its annotations
(`openWorldHint: true` means untrusted content comes in and requests go out). A tool that runs
commands (rule R104's words) can read files and reach the network: `private_data` and
`sends_out`. Sans-IO and pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from typing import Any

from km.insight.findings import FLOW, Finding
from km.insight.risk_rules import (
    CAPABILITIES,
    CAPABILITY_PATTERNS,
    OUTBOUND_FIRST_VERBS,
    PRIVATE_DATA,
    RULES_BY_ID,
    SENDS_OUT,
    UNTRUSTED_CONTENT,
)
from km.insight.risk_scan import pattern_of

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[\s_\-./:]+")


@cache
def _pattern(capability: str) -> re.Pattern[str]:
    """Compiled on first use: importing costs nothing for a process that never asks."""
    return re.compile(CAPABILITY_PATTERNS[capability], re.IGNORECASE)


FLOW_RULE = RULES_BY_ID["R701"]


def definition_text(name: str, description: str) -> str:
    """The words of a tool's name (`readFile`, `read_file` -> `read file`), then `description`."""
    words = _SPLIT.sub(" ", _CAMEL.sub(" ", name)).strip().lower()
    return f"{words} {description}" if description else words


def _head(description: object) -> str:
    if not isinstance(description, str):
        return ""
    head = description[:300]
    for stop in (". ", ".\n", "\n\n"):
        cut = head.find(stop)
        if cut >= 0:
            head = head[: cut + 1]
    return head


def tool_capabilities(tool: Mapping[str, Any]) -> frozenset[str]:
    """Which of `private_data`, `untrusted_content`, `sends_out` the tool has, judged from its
    definition. Any mapping is accepted; missing or odd fields count as absent."""
    if not isinstance(tool, Mapping):
        return frozenset()
    name = tool.get("name")
    annotations = tool.get("annotations")
    open_world = isinstance(annotations, Mapping) and annotations.get("openWorldHint") is True
    return _capabilities(
        name if isinstance(name, str) else "", _head(tool.get("description")), open_world
    )


@lru_cache(maxsize=2048)
def _capabilities(name: str, head: str, open_world: bool) -> frozenset[str]:
    words = definition_text(name, "")
    text = f"{words} {head}"
    found = set()
    outbound = words.split(" ", 1)[0] in OUTBOUND_FIRST_VERBS
    for cap in CAPABILITY_PATTERNS:
        if cap != SENDS_OUT and outbound:
            continue
        if _pattern(cap).search(text):
            found.add(cap)
    if open_world:
        found.update((UNTRUSTED_CONTENT, SENDS_OUT))
    if pattern_of("R104").search(words):
        found.update((PRIVATE_DATA, SENDS_OUT))
    return frozenset(found)


class FlowTracker:
    """Per session: feed it each tool called (its definition, or `{"name": ...}` when
    unknown); `observe` returns the flow finding once, on the call that completes the trifecta.
    """

    __slots__ = ("_by_capability", "_reported", "server")

    def __init__(self, server: str | None = None) -> None:
        self.server = server
        self._by_capability: dict[str, list[str]] = {cap: [] for cap in CAPABILITIES}
        self._reported = False

    def observe(self, tool: Mapping[str, Any]) -> Finding | None:
        name = tool.get("name") if isinstance(tool, Mapping) else None
        label = name if isinstance(name, str) else "?"
        for cap in tool_capabilities(tool):
            names = self._by_capability[cap]
            if label not in names and len(names) < 16:
                names.append(label)
        if self._reported or not all(self._by_capability.values()):
            return None
        self._reported = True
        return self.finding(label)

    @property
    def complete(self) -> bool:
        return all(self._by_capability.values())

    def finding(self, tool: str | None = None) -> Finding | None:
        """The flow finding if the trifecta is complete (whether or not already reported)."""
        if not self.complete:
            return None
        parts = [
            f"private data: {', '.join(self._by_capability[PRIVATE_DATA])}",
            f"untrusted content: {', '.join(self._by_capability[UNTRUSTED_CONTENT])}",
            f"sends out: {', '.join(self._by_capability[SENDS_OUT])}",
        ]
        detail = "; ".join(parts)
        return Finding(
            rule=FLOW_RULE.id,
            severity=FLOW_RULE.severity,
            kind=FLOW,
            message=f"{FLOW_RULE.message} ({detail})",
            tool=tool,
            server=self.server,
            field=None,
            span=None,
            excerpt=detail[:200],
        )


def toxic_flow(tools: Iterable[Mapping[str, Any]], *, server: str | None = None) -> Finding | None:
    """The flow finding for a session that used `tools` (definitions, or `{"name": ...}`), or
    None when they do not together read private data, take in untrusted content and send out.
    """
    tracker = FlowTracker(server)
    found = None
    for tool in tools:
        finding = tracker.observe(tool)
        if finding is not None:
            found = finding
    return found
