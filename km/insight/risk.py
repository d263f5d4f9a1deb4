"""Risk of each `tools/call`: a score 0-100, a level and the reasons, from the tool's
definition and the call's arguments. Sans-IO, pure, never raises on odd JSON.

The rules are data (`km.insight.risk_rules`); this module compiles and applies them. How a
score is made (docs/rules-risk.md says the same):
- every rule that matches counts once, whatever how often it matches;
- score = the highest matched weight + a quarter of the other matched weights, capped at 100;
- level from the score: >= CRITICAL_AT critical, >= HIGH_AT high, >= MEDIUM_AT medium, else low.
A rule's severity is the level of its weight alone, so a call that matches one rule has that
rule's severity as its level, and more rules can only raise it.

Arguments are walked to MAX_DEPTH levels and MAX_NODES values; the first MAX_TEXT characters
of each string and MAX_SCAN characters per call are examined. Past that nothing is reported:
the bounds keep a hostile 1 MB argument from costing more than a normal call.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from km.insight.findings import CRITICAL, HIGH, LOW, MEDIUM, RISK, Finding
from km.insight.flow import FlowTracker, definition_text, tool_capabilities, toxic_flow
from km.insight.risk_rules import RULES, RULES_BY_ID, RiskRule

__all__ = [
    "CRITICAL_AT",
    "HIGH_AT",
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

# Bounds on what one call's arguments cost to examine.
MAX_DEPTH = 32
MAX_NODES = 2000
MAX_TEXT = 16 * 1024
MAX_SCAN = 256 * 1024
MAX_URLS = 32  # per string


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


def _combined(target: str) -> re.Pattern[str]:
    parts = [f"(?P<{r.id}>{r.pattern})" for r in RULES if r.target == target and r.pattern]
    return re.compile("|".join(parts), re.IGNORECASE)


_PATH_RE = _combined("path")
_COMMAND_RE = _combined("command")
_SQL_RE = _combined("sql")


def _each(target: str, flags: int = re.IGNORECASE) -> list[tuple[RiskRule, re.Pattern[str]]]:
    return [(r, re.compile(r.pattern, flags)) for r in RULES if r.target == target and r.pattern]


_VERB_RES = _each("verb")
_HOST_RES = _each("host")
_URL_RES = _each("url")
_SECRET_RES = _each("secret", 0)
_ANNOTATION_RULES = [r for r in RULES if r.target == "annotation"]

_URL_FIND = re.compile(r"\b(?:https?|wss?|ftp)://[^\s\"'<>\\`]+", re.IGNORECASE)
_BARE_HOST = re.compile(r"^[a-z0-9][a-z0-9.-]*\.[a-z]{2,}(?::\d+)?(?:[/?#]|$)", re.IGNORECASE)
_TRAVERSAL = re.compile(r"(?:^|/)\.\.(?:/|$)|%2e%2e(?:%2f|/)", re.IGNORECASE)
_SQL_LEAD = re.compile(
    r"^\s*(?:--[^\n]*\n\s*)*(?:select|insert|update|delete|drop|truncate|alter|create|grant"
    r"|revoke|with|begin|merge|replace|exec)\b",
    re.IGNORECASE,
)
_DRIVE = re.compile(r"^[a-z]:[\\/]", re.IGNORECASE)
_HOME_ROOT = re.compile(r"^(?:/home/[^/]+|/users/[^/]+|/root)/?$", re.IGNORECASE)

# Key names that say what a string argument is.
def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


_COMMAND_KEYS = _names(
    "command cmd commands script shell code bash sh powershell pwsh commandline command_line"
    " cmdline exec run program argv args"
)
_SQL_KEYS = _names("sql query statement statements stmt sql_query raw_sql")
_PATH_KEYS = _names(
    "path paths file files filename file_name filepath file_path dir directory folder source"
    " destination dest src dst target cwd root location uri include exclude pattern"
)
_URL_KEYS = _names("url urls uri endpoint host hostname webhook webhook_url link href")


# --- the definition -------------------------------------------------------------------------


def _annotations(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    annotations = tool.get("annotations")
    return annotations if isinstance(annotations, Mapping) else {}


@lru_cache(maxsize=2048)
def _definition_rules(
    name: str, head: str, destructive: bool, read_only: bool, open_world: bool
) -> tuple[tuple[RiskRule, str, str, tuple[int, int] | None], ...]:
    """(rule, field, excerpt text, span) for the rules a definition matches (cached: the same
    definition is assessed on every call of its tool)."""
    out: list[tuple[RiskRule, str, str, tuple[int, int] | None]] = []
    flags = {"destructiveHint": destructive and not read_only, "openWorldHint": open_world}
    for rule in _ANNOTATION_RULES:
        if flags.get(rule.pattern or ""):
            out.append((rule, f"annotations.{rule.pattern}", "true", None))
    words = definition_text(name, "")
    for rule, pattern in _VERB_RES:
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


def _description_head(description: object) -> str:
    if not isinstance(description, str):
        return ""
    head = description[:200]
    for stop in (". ", ".\n", "\n\n"):
        cut = head.find(stop)
        if cut >= 0:
            head = head[: cut + 1]
    return head


# --- the arguments --------------------------------------------------------------------------


def _strings(arguments: object) -> Iterator[tuple[str, str, str]]:
    """(field path, key name, text) for each string in `arguments`, within the bounds."""
    stack: list[tuple[str, str, object, int]] = [("arguments", "", arguments, 0)]
    nodes = 0
    while stack and nodes < MAX_NODES:
        field, key, value, depth = stack.pop()
        nodes += 1
        if isinstance(value, str):
            yield field, key, value[:MAX_TEXT]
        elif depth >= MAX_DEPTH:
            continue
        elif isinstance(value, Mapping):
            items = list(value.items())[:MAX_NODES]
            command = _joined_command(value)
            if command is not None:
                yield f"{field}.command", "command", command
            for k, v in reversed(items):
                name = k if isinstance(k, str) else str(k)
                stack.append((f"{field}.{name}", name.lower(), v, depth + 1))
        elif isinstance(value, list | tuple):
            for i in range(min(len(value), MAX_NODES) - 1, -1, -1):
                stack.append((f"{field}[{i}]", key, value[i], depth + 1))


def _joined_command(value: Mapping[Any, Any]) -> str | None:
    """`{"command": "rm", "args": ["-rf", "/"]}` as the one command line it runs."""
    command = value.get("command", value.get("cmd"))
    args = value.get("args", value.get("argv"))
    if isinstance(command, str) and isinstance(args, list) and args and all(
        isinstance(a, str) for a in args
    ):
        return " ".join([command, *args])[:MAX_TEXT]
    return None


def _looks_like_path(text: str, key: str) -> bool:
    if key in _PATH_KEYS:
        return True
    first = text[:1]
    if first in ("/", "~", "\\") or text.startswith(("./", "../", "file:")):
        return True
    if _DRIVE.match(text):
        return True
    return ("/" in text or "\\" in text) and " " not in text and "://" not in text


def _normalise_path(text: str) -> str:
    path = text.replace("\\", "/")
    if path[:7].lower() == "file://":
        from urllib.parse import unquote

        path = unquote(path[7:])
        if path.startswith("localhost/"):
            path = path[9:]
    return path


def _root_paths(roots: Sequence[str]) -> tuple[str, ...]:
    out = []
    for root in roots:
        if isinstance(root, str) and root:
            path = _normalise_path(root).rstrip("/") or "/"
            out.append(path.lower() if _DRIVE.match(path) else path)
    return tuple(out)


def _outside_roots(path: str, roots: tuple[str, ...]) -> bool:
    if path.startswith("~"):
        return not any(_HOME_ROOT.match(r) for r in roots)
    if _DRIVE.match(path):
        path = path.lower()
    elif not path.startswith("/"):
        return False  # relative to the server's working directory: unknown
    import posixpath

    path = posixpath.normpath(path)
    return not any(root == "/" or path == root or path.startswith(root + "/") for root in roots)


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else url
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    authority = authority.rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0].lower()
    return authority.split(":", 1)[0].lower().rstrip(".")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host or not (host[0].isdigit() or ":" in host):
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class _Matches:
    """The first match of each rule (a rule counts once), in the order found."""

    __slots__ = ("budget", "found")

    def __init__(self) -> None:
        self.found: dict[str, tuple[str, str, tuple[int, int] | None]] = {}
        self.budget = MAX_SCAN

    def add(self, rule_id: str, field: str, text: str, span: tuple[int, int] | None) -> None:
        if rule_id not in self.found:
            self.found[rule_id] = (field, text, span)

    def regex(self, pattern: re.Pattern[str], field: str, text: str) -> None:
        for match in pattern.finditer(text):
            rule_id = match.lastgroup
            if rule_id is not None:
                self.add(rule_id, field, text, match.span())


def _scan_path(m: _Matches, field: str, text: str, roots: tuple[str, ...]) -> None:
    path = _normalise_path(text)
    m.regex(_PATH_RE, field, path)
    traversal = _TRAVERSAL.search(path)
    if traversal:
        m.add("R208", field, path, traversal.span())
    if roots and _outside_roots(path, roots):
        m.add("R209", field, path, None)


def _scan_urls(m: _Matches, field: str, text: str, key: str, roots: tuple[str, ...]) -> None:
    urls: list[tuple[str, tuple[int, int]]] = []
    if "://" in text:
        for i, match in enumerate(_URL_FIND.finditer(text)):
            if i >= MAX_URLS:
                break
            urls.append((match.group(), match.span()))
        if text[:7].lower() == "file://":
            _scan_path(m, field, text, roots)
    elif key in _URL_KEYS and _BARE_HOST.match(text):
        urls.append(("http://" + text, (0, len(text))))
    for url, span in urls:
        host = _host_of(url)
        ip = _ip(host)
        local = host in ("localhost", "0.0.0.0", "::") or host.endswith(".localhost")
        local = local or (ip is not None and ip.is_loopback)
        for rule, pattern in _HOST_RES:
            if pattern.search(host):
                m.add(rule.id, field, text, span)
        for rule, pattern in _URL_RES:
            if pattern.search(url):
                m.add(rule.id, field, text, span)
        if not local and host:
            m.add("R501", field, text, span)
            if ip is not None and ip.is_global:
                m.add("R502", field, text, span)


def _scan_string(
    m: _Matches, field: str, key: str, text: str, command_tool: bool, roots: tuple[str, ...]
) -> None:
    if m.budget <= 0 or len(text) < 2:
        return
    m.budget -= len(text)
    if "://" in text or key in _URL_KEYS:
        _scan_urls(m, field, text, key, roots)
    if key in _COMMAND_KEYS or (command_tool and (" " in text or "|" in text)):
        m.regex(_COMMAND_RE, field, text)
        m.regex(_PATH_RE, field, text.replace("\\", "/"))
    elif "://" not in text and _looks_like_path(text, key):
        _scan_path(m, field, text, roots)
    if key in _SQL_KEYS or _SQL_LEAD.match(text):
        m.regex(_SQL_RE, field, text)


def _secrets(m: _Matches, secret_kinds: Mapping[str, int]) -> None:
    by_rule: dict[str, list[str]] = {}
    for kind, count in secret_kinds.items():
        if not isinstance(kind, str) or not isinstance(count, int) or count <= 0:
            continue
        for rule, pattern in _SECRET_RES:
            if pattern.search(kind):
                by_rule.setdefault(rule.id, []).append(f"{kind} x{count}")
                break
    for rule_id, kinds in by_rule.items():
        m.add(rule_id, "arguments", ", ".join(kinds), None)


# --- excerpts -------------------------------------------------------------------------------

EXCERPT_CHARS = 80
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u115f\u1160\u17b4\u17b5\u180e"
                     r"\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
                     r"\ufff0-\ufffb\U000e0000-\U000e007f\ud800-\udfff]")


def _visible_char(match: re.Match[str]) -> str:
    ch = match.group()
    return "<ESC>" if ch == "\x1b" else f"<U+{ord(ch):04X}>"


def excerpt(text: str, span: tuple[int, int] | None, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of `text` around `span`, hidden and control characters
    shown as `<U+200B>`/`<ESC>` (safe on a terminal); a cut is marked with `...`."""
    start, end = span if span is not None else (0, min(len(text), limit))
    if len(text) > limit:
        lead = max(0, min(start - (limit - (end - start)) // 2, len(text) - limit))
        piece = text[lead : lead + limit]
        piece = ("..." if lead > 0 else "") + piece + ("..." if lead + limit < len(text) else "")
    else:
        piece = text
    return _HIDDEN.sub(_visible_char, piece)


# --- the call -------------------------------------------------------------------------------


def assess_call(
    tool: Mapping[str, Any] | None,
    arguments: object,
    *,
    roots: Sequence[str] = (),
    secret_kinds: Mapping[str, int] | None = None,
    name: str | None = None,
    server: str | None = None,
) -> CallRisk:
    """The risk of one `tools/call`: `tool` is the tool's definition when known (from the
    server's `tools/list`), `arguments` the call's `params.arguments` (any JSON value),
    `roots` the client's roots (`file://` URIs or paths) when it declared any, `secret_kinds`
    the redactor's counts per kind of secret found in the arguments. `name` is the called
    tool's name when `tool` is unknown; `server` is copied into the findings."""
    if not isinstance(tool, Mapping):
        tool = None
    if name is None and tool is not None:
        tool_name = tool.get("name")
        name = tool_name if isinstance(tool_name, str) else None
    m = _Matches()
    definition: tuple[tuple[RiskRule, str, str, tuple[int, int] | None], ...] = ()
    if tool is not None or name:
        annotations = _annotations(tool) if tool is not None else {}
        definition = _definition_rules(
            name or "",
            _description_head(tool.get("description")) if tool is not None else "",
            annotations.get("destructiveHint") is True,
            annotations.get("readOnlyHint") is True,
            annotations.get("openWorldHint") is True,
        )
    for rule, field, text, span in definition:
        m.add(rule.id, field, text, span)
    command_tool = "R104" in m.found
    root_paths = _root_paths(roots) if roots else ()
    for field, key, text in _strings(arguments):
        _scan_string(m, field, key, text, command_tool, root_paths)
    if secret_kinds:
        _secrets(m, secret_kinds)
    return _result(m, name, server)


def _result(m: _Matches, tool: str | None, server: str | None) -> CallRisk:
    if not m.found:
        return CallRisk(0, LOW, ())
    rules = sorted((RULES_BY_ID[i] for i in m.found), key=lambda r: -r.weight)
    reasons = []
    for rule in rules:
        field, text, span = m.found[rule.id]
        reasons.append(
            Finding(
                rule=rule.id,
                severity=rule.severity,
                kind=RISK,
                message=rule.message,
                tool=tool,
                server=server,
                field=field,
                span=span,
                excerpt=excerpt(text, span),
            )
        )
    score = score_of([r.weight for r in rules])
    return CallRisk(score, level_for(score), tuple(reasons))
