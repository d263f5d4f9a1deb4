"""Findings and severities: the one vocabulary every analyzer of the insight core speaks."""

from __future__ import annotations

from dataclasses import dataclass

INFO = "info"
LOW = "low"
MEDIUM = "medium"
HIGH = "high"
CRITICAL = "critical"
SEVERITIES = (INFO, LOW, MEDIUM, HIGH, CRITICAL)  # ascending
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

# What a finding is about.
POISONING = "poisoning"  # a tool definition carries instructions aimed at the model
DRIFT = "drift"  # a definition changed since it was first seen or approved
RISK = "risk"  # a tools/call that does something dangerous
FLOW = "flow"  # a session combined tools into a dangerous flow (the lethal trifecta)
FINDING_KINDS = (POISONING, DRIFT, RISK, FLOW)


def severity_rank(severity: str) -> int:
    """0 (info) to 4 (critical); raises KeyError for a name that is not a severity."""
    return _RANK[severity]


def at_least(severity: str, threshold: str) -> bool:
    """Whether `severity` is `threshold` or worse."""
    return _RANK[severity] >= _RANK[threshold]


def worst(severities: tuple[str, ...] | list[str], default: str = INFO) -> str:
    """The highest of `severities`, `default` when there is none."""
    return max(severities, key=_RANK.__getitem__, default=default)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing worth a user's attention, from one rule.

    `field` names where it was found, as a dotted path into the definition or message
    (`description`, `inputSchema.properties.path.description`, `arguments.command`); `span`
    is the [start, end) character range of the match within that field's text, when the rule
    matches text. `excerpt` is a short piece of the text around the match with hidden
    characters made visible (`<U+200B>`, `<ESC>`), safe to print on a terminal.
    """

    rule: str  # the rule id, e.g. "P101"; rules are listed in docs/insight.md
    severity: str  # one of SEVERITIES
    kind: str  # one of FINDING_KINDS
    message: str  # what was found and why it matters, one line
    tool: str | None = None
    server: str | None = None
    field: str | None = None
    span: tuple[int, int] | None = None
    excerpt: str = ""

    def to_json(self) -> dict[str, object]:
        """A plain JSON object (what `--json` outputs, the API returns and SARIF maps)."""
        return {
            "rule": self.rule,
            "severity": self.severity,
            "kind": self.kind,
            "message": self.message,
            "tool": self.tool,
            "server": self.server,
            "field": self.field,
            "span": list(self.span) if self.span is not None else None,
            "excerpt": self.excerpt,
        }
