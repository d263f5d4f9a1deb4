"""SARIF 2.1.0 for the insight core's findings (sans-IO), for GitHub code scanning and other
SARIF viewers.

One run, tool `km`, whose rules are the insight core's rule tables (poisoning P1xx, risk R1xx
and the toxic flow R701, drift D1xx) with their descriptions; a finding of a rule the tables do
not know (a newer km's) still gets a rule entry built from the finding. Each finding becomes a
result: level from its severity, GitHub's `security-severity` on the rule, a logical location
`server/tool` (an MCP tool is not a file: the physical location is an `mcp://` URI naming the
server and tool), a partial fingerprint stable across sessions (rule, server, tool, field,
excerpt) so code scanning tracks one alert per problem, and km's own fields as properties.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from km.insight.findings import CRITICAL, DRIFT, FLOW, HIGH, INFO, LOW, MEDIUM, POISONING, RISK

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
VERSION = "2.1.0"
INFORMATION_URI = "https://github.com/kilometers-ai/km"
LEVELS = {CRITICAL: "error", HIGH: "error", MEDIUM: "warning", LOW: "note", INFO: "note"}
# GitHub code scanning reads `security-severity` (0.0-10.0) off the rule to rank alerts.
SECURITY_SEVERITY = {CRITICAL: "9.5", HIGH: "8.0", MEDIUM: "5.5", LOW: "3.0", INFO: "1.0"}
FINGERPRINT = "kmFinding/v1"
_PROPERTIES = (
    "severity", "kind", "server", "tool", "field", "excerpt", "session_id", "event_id", "ts_ns",
    "id",
)  # fmt: skip


def rule_table() -> dict[str, dict[str, Any]]:
    """Every rule the insight core has, as SARIF `reportingDescriptor`s by id."""
    from km.insight import inventory, poisoning_rules, risk_rules

    rules: dict[str, dict[str, Any]] = {}
    for p in poisoning_rules.RULES:
        rules[p.id] = _descriptor(
            p.id, p.severity, POISONING, p.title, f"{p.why} Matches: {p.matches}", p.category
        )
    for r in risk_rules.RULES:
        kind = FLOW if r.id == "R701" else RISK
        rules[r.id] = _descriptor(r.id, r.severity, kind, r.message, r.message, r.target)
    for rule_id, (severity, text) in inventory.DRIFT_RULES.items():
        rules[rule_id] = _descriptor(rule_id, severity, DRIFT, text, text, "drift")
    return rules


def _descriptor(
    rule_id: str, severity: str, kind: str, short: str, full: str, category: str
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": _camel(short) or rule_id,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": full},
        "defaultConfiguration": {"level": LEVELS.get(severity, "warning")},
        "properties": {
            "tags": list(dict.fromkeys(("security", "mcp", kind, category))),
            "kind": kind,
            "severity": severity,
            "security-severity": SECURITY_SEVERITY.get(severity, "5.0"),
        },
    }


def _camel(text: str) -> str:
    words = [w for w in "".join(c if c.isalnum() else " " for c in text).split() if w]
    return "".join(w[:1].upper() + w[1:] for w in words[:8])


def sarif_log(
    findings: Iterable[Mapping[str, Any]],
    *,
    km_version: str,
    rules: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The SARIF log of `findings` (rows of the findings table, or `Finding.to_json()` dicts
    with the row's session/event fields when known)."""
    table = dict(rule_table() if rules is None else rules)
    results = []
    used: dict[str, int] = {}
    descriptors: list[dict[str, Any]] = []
    for f in findings:
        rule_id = str(f.get("rule") or "unknown")
        if rule_id not in used:
            descriptor = table.get(rule_id) or _descriptor(
                rule_id, str(f.get("severity") or MEDIUM), str(f.get("kind") or RISK),
                str(f.get("message") or rule_id), str(f.get("message") or rule_id), "other",
            )  # fmt: skip
            used[rule_id] = len(descriptors)
            descriptors.append(descriptor)
        results.append(_result(f, rule_id, used[rule_id]))
    return {
        "$schema": SCHEMA,
        "version": VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "km",
                        "fullName": "km (Kilometers): MCP observability and insight",
                        "version": km_version,
                        "semanticVersion": km_version,
                        "informationUri": INFORMATION_URI,
                        "rules": descriptors,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def _result(f: Mapping[str, Any], rule_id: str, index: int) -> dict[str, Any]:
    severity = str(f.get("severity") or MEDIUM)
    server = str(f.get("server") or "")
    tool = f.get("tool")
    field = f.get("field")
    excerpt = str(f.get("excerpt") or "")
    where = ", ".join(
        part
        for part in (f"tool `{tool}`" if tool else "", f"server `{server}`" if server else "",
                     f"in {field}" if field else "")
        if part
    )  # fmt: skip
    text = str(f.get("message") or rule_id) + (f" ({where})" if where else "")
    if excerpt:
        text += f": {excerpt}"
    qualified = f"{server}/{tool}" if tool else server
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {
                "uri": f"mcp://{quote(server, safe='')}/{quote(str(tool or ''), safe='')}"
            }
        },
        "logicalLocations": [
            {"name": str(tool or server), "fullyQualifiedName": qualified, "kind": "function"}
        ],
    }
    if field:
        location["message"] = {"text": f"in {field}"}
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": index,
        "level": LEVELS.get(severity, "warning"),
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT: _fingerprint(rule_id, server, tool, field, excerpt)},
        "properties": {k: f[k] for k in _PROPERTIES if f.get(k) is not None},
    }
    return result


def _fingerprint(rule: str, server: str, tool: object, field: object, excerpt: str) -> str:
    key = "\x1f".join((rule, server, str(tool or ""), str(field or ""), excerpt))
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
