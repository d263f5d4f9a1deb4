"""Risk of each `tools/call`: a score 0-100, a level and the reasons, from the tool's
definition and the call's arguments. Sans-IO, pure, never raises on odd JSON.

The rules are data (`km.insight.risk_rules`); this module compiles and applies them. How a
score is made (docs/rules-risk.md says the same):
- every rule that matches counts once, whatever how often it matches;
- score = the highest matched weight + a quarter of the other matched weights, capped at 100;
- level from the score: >= CRITICAL_AT critical, >= HIGH_AT high, >= MEDIUM_AT medium, else low.
A rule's severity is the level of its weight alone, so a call that matches one rule has that
rule's severity as its level, and more rules can only raise it.

The arguments' side (the walk, its bounds, the pre-scan, paths, commands, SQL, URLs) is in
`km.insight.risk_scan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from km.insight.findings import CRITICAL, HIGH, LOW, MEDIUM, RISK, Finding
from km.insight.flow import FlowTracker, definition_text, tool_capabilities, toxic_flow
from km.insight.risk_rules import RULES, RULES_BY_ID, RiskRule
from km.insight.risk_scan import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_SCAN,
    MAX_TEXT,
    Matches,
    candidates,
    pattern_of,
    roots_of,
    rules_of,
    scan_string,
    strings,
)
from km.insight.text import excerpt, visible

__all__ = [
    "CRITICAL_AT",
    "HIGH_AT",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SCAN",
    "MAX_TEXT",
    "MEDIUM_AT",
    "CallRisk",
    "FlowTracker",
    "assess_call",
    "level_for",
    "score_of",
    "tool_capabilities",
    "toxic_flow",
]

# Levels from the score.
CRITICAL_AT = 80
HIGH_AT = 50
MEDIUM_AT = 25
OTHERS_FACTOR = 0.25  # each further matched rule adds this share of its weight


@dataclass(frozen=True, slots=True)
class CallRisk:
    score: int  # 0-100
    level: str  # low | medium | high | critical
    reasons: tuple[Finding, ...]  # kind "risk", worst first


def level_for(score: int) -> str:
    if score >= CRITICAL_AT:
        return CRITICAL
    if score >= HIGH_AT:
        return HIGH
    if score >= MEDIUM_AT:
        return MEDIUM
    return LOW


def score_of(weights: Sequence[int]) -> int:
    """The score of a call whose matched rules have these weights (one per rule)."""
    if not weights:
        return 0
    ordered = sorted(weights, reverse=True)
    return min(100, ordered[0] + int(sum(ordered[1:]) * OTHERS_FACTOR))


# --- compiled rules -------------------------------------------------------------------------

_VERB_RULES = rules_of("verb")
_SECRET_RULES = rules_of("secret")
_ANNOTATION_RULES = [r for r in RULES if r.target == "annotation"]


# --- the definition -------------------------------------------------------------------------


def _annotations(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    annotations = tool.get("annotations")
    return annotations if isinstance(annotations, Mapping) else {}


@lru_cache(maxsize=2048)
def _definition_rules(
    name: str, description: str, destructive: bool, read_only: bool, open_world: bool
) -> tuple[tuple[RiskRule, str, str, tuple[int, int] | None], ...]:
    """(rule, field, excerpt text, span) for the rules a definition matches (cached: the same
    definition is assessed on every call of its tool)."""
    head = _description_head(description)
    out: list[tuple[RiskRule, str, str, tuple[int, int] | None]] = []
    flags = {"destructiveHint": destructive and not read_only, "openWorldHint": open_world}
    for rule in _ANNOTATION_RULES:
        if flags.get(rule.pattern or ""):
            out.append((rule, f"annotations.{rule.pattern}", "true", None))
    words = definition_text(name, "")
    for rule in _VERB_RULES:
        pattern = pattern_of(rule.id)
        if read_only and rule.id in ("R103", "R107"):
            continue  # the server says the tool only reads
        match = pattern.search(words)
        if match:
            out.append((rule, "name", name, None))
            continue
        match = pattern.search(head)
        if match:
            out.append((rule, "description", head, match.span()))
    return tuple(out)


def _description_head(description: str) -> str:
    head = description[:200]
    for stop in (". ", ".\n", "\n\n"):
        cut = head.find(stop)
        if cut >= 0:
            head = head[: cut + 1]
    return head


def _secrets(m: Matches, secret_kinds: Mapping[str, int]) -> None:
    by_rule: dict[str, list[str]] = {}
    for kind, count in secret_kinds.items():
        if not isinstance(kind, str) or not isinstance(count, int) or count <= 0:
            continue
        for rule in _SECRET_RULES:
            if pattern_of(rule.id).search(kind):
                by_rule.setdefault(rule.id, []).append(f"{kind} x{count}")
                break
    for rule_id, kinds in by_rule.items():
        m.add(rule_id, "arguments", ", ".join(kinds), None)


# --- excerpts -------------------------------------------------------------------------------

EXCERPT_CHARS = 100


def _excerpt(text: str, span: tuple[int, int] | None) -> str:
    """A short piece of `text` around `span`, hidden characters made visible (km.insight.text,
    the same as poisoning findings)."""
    if span is None:
        return visible(text, EXCERPT_CHARS)
    return excerpt(text, span[0], span[1], context=30, limit=EXCERPT_CHARS)


# --- the call -------------------------------------------------------------------------------


def assess_call(
    tool: Mapping[str, Any] | None,
    arguments: object,
    *,
    roots: Sequence[str] | Sequence[Mapping[str, Any]] = (),
    secret_kinds: Mapping[str, int] | None = None,
    name: str | None = None,
    server: str | None = None,
) -> CallRisk:
    """The risk of one `tools/call`: `tool` is the tool's definition when known (from the
    server's `tools/list`), `arguments` the call's `params.arguments` (any JSON value),
    `roots` the client's roots (`file://` URIs, paths, or the `{"uri": ...}` entries of a
    `roots/list` result) when it declared any, `secret_kinds`
    the redactor's counts per kind of secret found in the arguments. `name` is the called
    tool's name when `tool` is unknown; `server` is copied into the findings."""
    if not isinstance(tool, Mapping):
        tool = None
    if name is None and tool is not None:
        tool_name = tool.get("name")
        name = tool_name if isinstance(tool_name, str) else None
    definition: tuple[tuple[RiskRule, str, str, tuple[int, int] | None], ...] = ()
    if tool is not None or name:
        annotations = _annotations(tool) if tool is not None else {}
        description = tool.get("description") if tool is not None else None
        definition = _definition_rules(
            name or "",
            description if isinstance(description, str) else "",
            annotations.get("destructiveHint") is True,
            annotations.get("readOnlyHint") is True,
            annotations.get("openWorldHint") is True,
        )
    found = strings(arguments)
    texts = [text for _, _, text in found]
    tried, urls = candidates(texts) if texts else (set(), False)
    m = Matches(tried, urls, roots_of(roots))
    for rule, field, text, span in definition:
        m.add(rule.id, field, text, span)
    from_definition = len(m.found)
    command_tool = "R104" in m.found
    for field, key, text in found:
        if len(text) >= 2:
            scan_string(m, field, key, text, command_tool)
    if secret_kinds:
        _secrets(m, secret_kinds)
    return _result(m, name, server, from_definition)


_NO_RISK = CallRisk(0, LOW, ())


def _result(m: Matches, tool: str | None, server: str | None, from_definition: int) -> CallRisk:
    """The call's risk; the first `from_definition` matches came from the definition, whose
    findings are the same on every call of the tool (cached)."""
    if not m.found:
        return _NO_RISK
    ids = list(m.found)
    reasons = []
    for index, rule_id in enumerate(ids):
        field, text, span = m.found[rule_id]
        if index < from_definition:
            reasons.append(_cached_finding(rule_id, field, text, span, tool, server))
        else:
            reasons.append(_finding(rule_id, field, text, span, tool, server))
    reasons.sort(key=lambda f: -RULES_BY_ID[f.rule].weight)
    score = score_of([RULES_BY_ID[i].weight for i in ids])
    return CallRisk(score, level_for(score), tuple(reasons))


def _finding(
    rule_id: str,
    field: str,
    text: str,
    span: tuple[int, int] | None,
    tool: str | None,
    server: str | None,
) -> Finding:
    rule = RULES_BY_ID[rule_id]
    return Finding(
        rule=rule.id,
        severity=rule.severity,
        kind=RISK,
        message=rule.message,
        tool=tool,
        server=server,
        field=field,
        span=span,
        excerpt=_excerpt(text, span),
    )


_cached_finding = lru_cache(maxsize=4096)(_finding)  # definition texts: names, 200 characters
