"""Tool poisoning: findings over MCP tool definitions (rules in poisoning_rules.py).

Every string of a definition is scanned: name, title, description, annotations, and every
string of inputSchema/outputSchema (descriptions, titles, defaults, enums, examples, const)
plus property names and other keys. Text rules run after invisible characters are stripped
(so `ig<U+200B>nore` still reads `ignore`); spans point into the original text. Weak signals
of different kinds combine into one stronger finding (P130, P199).

Pure and total: any JSON value in, findings out, never an exception (a malformed entry is a
finding). The walk is iterative with a depth limit, so a schema nested 10,000 deep costs
nothing and raises no RecursionError.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from km.insight import poisoning_rules as R
from km.insight.findings import POISONING, Finding, severity_rank
from km.insight.poisoning_chars import first_encoded_prose, hidden_chars, mixed_scripts
from km.insight.poisoning_sentences import sentence_hits
from km.insight.text import (
    excerpt,
    strip_hidden,
    visible,
)

MAX_DEPTH = 64  # deeper than any real schema; what lies below is reported (P192), not read
MAX_STRINGS = 20_000  # strings scanned per definition
MATCH_CHARS = 200_000  # text rules read at most this much of one field
LONG, HUGE = 10_000, 100_000  # P180, P181
VALUE_KEYS = frozenset(("default", "const", "enum", "examples", "example"))

_WORDS = re.compile(r"[a-z]+")
_NAME_TOKENS = re.compile(r"[\w.-]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_QUOTES = "'\"`\u2018\u2019\u201c\u201d"
_MENTIONED = frozenset(("P101", "P103", "P104"))  # quoted, these are talked about, not used
_PADDING = re.compile(r"(?:[ \t\u00a0\u3000]{100,}|(?:[ \t]*\r?\n){16,})(?=[^\n]*\S)")
_BY_TRIGGER: dict[str, list[int]] = {}
for _i, _rule in enumerate(R.TEXT_RULES):
    for _word in _rule.triggers:
        _BY_TRIGGER.setdefault(_word, []).append(_i)
_ALL_TRIGGERS = frozenset(_BY_TRIGGER)
_UNGATED_IDX = tuple(i for i, rule in enumerate(R.TEXT_RULES) if not rule.triggers)
_UNGATED = [R.TEXT_RULES[i] for i in _UNGATED_IDX]
# Keys of JSON Schema and MCP definitions, never suspicious (skips a regex per key).
_PLAIN_KEY_TEXT = (
    "type description properties required items enum default title name inputSchema "
    "outputSchema annotations additionalProperties $schema format minimum maximum "
    "minLength maxLength pattern anyOf oneOf allOf const examples example readOnlyHint "
    "destructiveHint idempotentHint openWorldHint minItems maxItems uniqueItems $ref $defs "
    "definitions nullable exclusiveMinimum exclusiveMaximum multipleOf not if then else "
    "_meta icons"
)
_PLAIN_KEYS = frozenset(_PLAIN_KEY_TEXT.split())
_P121 = R.BY_ID["P121"]
_DEFENSIVE = re.compile(
    r"\b(?:detect|scan|prevent|block|protect|identify|flag|check|against|analy[sz]e|monitor|"
    r"audit|report|alert|find|defen[cd]|mitigat|stop|guard|would|could|risk|vulnerab)\w*\b[^.\n]*$",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"(?:\bnot|n't|\bnever)\s+$", re.IGNORECASE)
_POINTS = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
_LEVELS = ("info", "low", "medium", "high", "critical")


@dataclass(slots=True)
class _Hit:
    rule: R.Rule
    field: str
    span: tuple[int, int]
    excerpt: str
    detail: str = ""
    severity: str = ""
    source: str = ""  # the (stripped) text matched, for rules evaluated later (P121)
    at: int = 0  # where in `source` the match starts

    def finding(self, tool: str | None, server: str | None) -> Finding:
        message = self.rule.title + (f": {self.detail}" if self.detail else "")
        return Finding(
            rule=self.rule.id,
            severity=self.severity or self.rule.severity,
            kind=POISONING,
            message=message,
            tool=tool,
            server=server,
            field=self.field,
            span=self.span,
            excerpt=self.excerpt,
        )


def scan_tools(tools: Sequence[object], *, server: str | None = None) -> list[Finding]:
    """Findings over a `tools/list` result's `tools` (any JSON values: a malformed entry
    gives a finding, never an exception)."""
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        hit = _Hit(R.BY_ID["P190"], "tools", (0, 0), "", "the tool list is not an array")
        return [hit.finding(None, server)]
    names = [t.get("name") for t in tools if isinstance(t, Mapping)]
    known = frozenset(n for n in names if isinstance(n, str))
    findings: list[Finding] = []
    clean: set[tuple[str, str]] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            kind = "null" if tool is None else type(tool).__name__
            hit = _Hit(
                R.BY_ID["P190"],
                f"tools[{index}]",
                (0, 0),
                visible(repr(tool), 60),
                f"entry {index} is {kind}, not an object",
            )
            findings.append(hit.finding(f"#{index}", server))
            continue
        name = tool.get("name")
        label = name if isinstance(name, str) else f"#{index}"
        others = known - {name} if isinstance(name, str) else known
        findings.extend(_scan(tool, label, server, others, clean))
    for name, count in Counter(n for n in names if isinstance(n, str)).items():
        if count > 1:
            hit = _Hit(
                R.BY_ID["P191"],
                "name",
                (0, len(name)),
                visible(name),
                f"{count} definitions named {visible(name, 60)!r}",
            )
            findings.append(hit.finding(name, server))
    return findings


def scan_tool(
    tool: Mapping[str, Any], *, server: str | None = None, other_tools: Collection[str] = ()
) -> list[Finding]:
    """Findings over one tool definition. `other_tools`: the names of the other tools of its
    server (a demand to run before one of those is an ordering hint, not shadowing)."""
    if not isinstance(tool, Mapping):
        hit = _Hit(R.BY_ID["P190"], "", (0, 0), visible(repr(tool), 60), "not an object")
        return [hit.finding(None, server)]
    name = tool.get("name")
    label = name if isinstance(name, str) else None
    return _scan(tool, label, server, frozenset(other_tools), set())


# ---------------------------------------------------------------------------- the walk


def _strings(tool: Mapping[str, Any], hits: list[_Hit]) -> Iterator[tuple[str, str, str]]:
    """(field path, text, role) of every string in `tool`; role is `text`, `value` (a
    default/const/enum/example), `param` (a property name) or `key` (any other key)."""
    stack: list[tuple[object, str, int, str]] = [(tool, "", 0, "text")]
    count = 0
    too_deep = False
    while stack:
        value, path, depth, role = stack.pop()
        if isinstance(value, str):
            count += 1
            if count > MAX_STRINGS:
                hits.append(
                    _Hit(
                        R.BY_ID["P192"],
                        path,
                        (0, 0),
                        "",
                        f"more than {MAX_STRINGS} strings; the rest was not scanned",
                    )
                )
                return
            yield path, value, role
        elif isinstance(value, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                if not too_deep:
                    too_deep = True
                    hits.append(
                        _Hit(
                            R.BY_ID["P192"],
                            path,
                            (0, 0),
                            "",
                            f"nested deeper than {MAX_DEPTH} levels; not scanned below",
                        )
                    )
                continue
            if isinstance(value, Mapping):
                is_props = path.endswith(".properties") or path.endswith("patternProperties")
                items = list(value.items())
                for key, child in reversed(items):
                    key_text = key if isinstance(key, str) else str(key)
                    child_path = f"{path}.{key_text}" if path else key_text
                    child_role = "value" if key_text in VALUE_KEYS else "text"
                    if role == "value":
                        child_role = "value"
                    stack.append((child, child_path, depth + 1, child_role))
                    count += 1
                    yield child_path, key_text, "param" if is_props else "key"
            else:
                for i in range(len(value) - 1, -1, -1):
                    stack.append((value[i], f"{path}[{i}]", depth + 1, role))


def _scan(
    tool: Mapping[str, Any],
    label: str | None,
    server: str | None,
    others: frozenset[str],
    clean: set[tuple[str, str]],
) -> list[Finding]:
    hits: list[_Hit] = []
    name = tool.get("name")
    if not isinstance(name, str):
        what = "missing" if name is None else f"a {type(name).__name__}, not a string"
        hits.append(
            _Hit(R.BY_ID["P190"], "name", (0, 0), visible(repr(name), 60), f"the name is {what}")
        )
    for key in ("description", "title"):
        if key in tool and not isinstance(tool[key], str):
            hits.append(
                _Hit(
                    R.BY_ID["P190"],
                    key,
                    (0, 0),
                    visible(repr(tool[key]), 60),
                    f"{key} is not a string",
                )
            )
    for key in ("inputSchema", "outputSchema", "annotations"):
        if key in tool and not isinstance(tool[key], Mapping):
            hits.append(
                _Hit(
                    R.BY_ID["P190"],
                    key,
                    (0, 0),
                    visible(repr(tool[key]), 60),
                    f"{key} is not an object",
                )
            )
    description = tool.get("description")
    if (
        isinstance(name, str)
        and isinstance(description, str)
        and R.BAIT_NAME.search(name)
        and (claim := R.BAIT_CLAIM.search(description)) is not None
    ):
        span = claim.span()
        hits.append(_Hit(R.BY_ID["P153"], "description", span, excerpt(description, *span)))
    for path, text, role in _strings(tool, hits):
        if role == "param":
            _check_param(text, path, hits)
            continue
        if role == "key":
            if text not in _PLAIN_KEYS and R.SUSPICIOUS_KEY.search(text):
                hits.append(_Hit(R.BY_ID["P171"], path, (0, len(text)), visible(text)))
            continue
        if (text, role) in clean:
            continue  # seen in this list and found clean (schemas repeat many strings)
        before = len(hits)
        own = name if isinstance(name, str) else None
        if not _check_text(text, path, role, hits, others, own=own) and len(hits) == before:
            clean.add((text, role))
    return [h.finding(label, server) for h in _combine(hits)]


# ---------------------------------------------------------------------------- per string


def _check_param(name: str, path: str, hits: list[_Hit]) -> None:
    normal = re.sub(r"[\s_\-.]", "", name.lower())
    spaced = " ".join(_CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").lower().split())
    if normal in R.SIDE_CHANNEL_NAMES:
        hits.append(
            _Hit(
                R.BY_ID["P126"],
                path,
                (0, len(name)),
                visible(name),
                f"parameter {visible(name, 40)!r}",
            )
        )
    elif R.SECRET_PARAM.search(spaced) and R.SECRET_PARAM_CONTENT.search(spaced):
        hits.append(
            _Hit(
                R.BY_ID["P126"],
                path,
                (0, len(name)),
                visible(name),
                f"parameter {visible(name, 40)!r} is named for a credential file",
                severity="high",
            )
        )
    _check_chars(name, path, hits)
    _check_confusable(name, path, hits)


def _check_text(
    text: str,
    path: str,
    role: str,
    hits: list[_Hit],
    others: frozenset[str],
    decoded: bool = False,
    own: str | None = None,
) -> bool:
    """Append the hits of one string; True when a sibling exemption applied (the verdict
    then depends on the list, so it must not be cached)."""
    exempted = False
    size = len(text)
    if size >= LONG:
        rule = R.BY_ID["P181" if size >= HUGE else "P180"]
        hits.append(_Hit(rule, path, (0, size), visible(text[:60], 60), f"{size:,} characters"))
    if not (text.isascii() and text.isprintable()):
        _check_chars(text, path, hits)
    if path == "name":
        _check_confusable(text, path, hits)
    body = text[:MATCH_CHARS]
    plain, where = strip_hidden(body)
    lowered = plain.lower()
    words = set(_WORDS.findall(lowered))
    active = words & _ALL_TRIGGERS
    for rule in _UNGATED if not active else _rules_for(active):
        if rule.id == "P121":
            continue  # evaluated lazily, only next to a data move (see _combine)
        if rule.needs and not any(n in lowered for n in rule.needs):
            continue
        found: _Hit | None = None
        count = 0
        for index, pattern in enumerate(rule.patterns):
            if rule.gates and rule.gates[index].isdisjoint(words):
                continue
            match = _first(pattern, plain, rule.near)
            if match is None:
                continue
            if rule.id in ("P141", "P150") and others and _names_sibling(match[2], others):
                exempted = True
                continue  # an ordering hint about a sibling tool of the same server
            if rule.id in _MENTIONED and _quoted(plain, match[0], match[1]):
                continue  # "detects phrases such as 'ignore previous instructions'"
            if rule.id == "P174" and _DEFENSIVE.search(plain, max(0, match[0] - 50), match[0]):
                continue  # "detects data exfiltration" describes a defence
            if rule.negatable and _NEGATED.search(plain, max(0, match[0] - 8), match[0]):
                continue  # "do not include personal data in ..." forbids, it does not order
            count += 1
            if found is None:
                start, end = _origin(match[0], match[1], where)
                found = _Hit(rule, path, (start, end), excerpt(text, start, end))
                found.source, found.at = plain, match[0]
            if not rule.many:
                break
        if found is not None:
            if rule.many and count >= rule.many:
                found.severity = _LEVELS[_POINTS[rule.severity] + 1]
                found.detail = f"{count} different phrases"
            hits.append(found)
    if not words.isdisjoint(R.SENTENCE_GATE):
        found_sentences, used_own = sentence_hits(plain, own, words)
        exempted = exempted or used_own
        for rule_id, start, end in found_sentences:
            a, b = _origin(start, end, where)
            hits.append(_Hit(R.BY_ID[rule_id], path, (a, b), excerpt(text, a, b)))
    if not words.isdisjoint(R.HYPE_TRIGGERS) or "⭐" in plain:
        _check_hype(plain, text, where, path, hits, words)
    if role == "value" and R.SCHEMA_VALUE_INSTRUCTION.search(plain) and len(plain) >= 20:
        hits.append(_Hit(R.BY_ID["P170"], path, (0, len(text)), visible(text, 80)))
    padding = _PADDING.search(body) if "          " in body or body.count("\n") >= 16 else None
    if padding is not None:
        hits.append(
            _Hit(
                R.BY_ID["P111"], path, padding.span(), excerpt(text, padding.start(), padding.end())
            )
        )
    if not decoded and size >= 40:
        _check_encoded(plain, text, where, path, hits, others)
    return exempted


def _rules_for(words: set[str]) -> list[R.Rule]:
    """The text rules gated by any of `words`, in table order."""
    picked: set[int] = set()
    for word in words:
        picked.update(_BY_TRIGGER[word])
    picked.update(_UNGATED_IDX)
    return [R.TEXT_RULES[i] for i in sorted(picked)]


def _quoted(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 1) : start]
    after = text[end : end + 2]
    return bool(before) and before in _QUOTES and any(c in _QUOTES for c in after)


def _names_sibling(text: str, others: frozenset[str]) -> bool:
    return not others.isdisjoint(_NAME_TOKENS.findall(text))


def _first(
    pattern: R.LazyPattern, text: str, near: R.LazyPattern | None
) -> tuple[int, int, str] | None:
    if near is None:
        m = pattern.search(text)
        return None if m is None else (m.start(), m.end(), m.group(0))
    for n, m in enumerate(pattern.finditer(text)):
        if near.search(m.group(0)):
            return m.start(), m.end(), m.group(0)
        if n >= 20:
            break
    return None


def _origin(start: int, end: int, where: list[int] | None) -> tuple[int, int]:
    if where is None:
        return start, end
    return where[start], where[max(end - 1, start)] + (1 if end > start else 0)


def _check_hype(
    plain: str, text: str, where: list[int] | None, path: str, hits: list[_Hit], words: set[str]
) -> None:
    score = 0
    first: tuple[int, int] | None = None
    stars = "⭐" in plain
    for pattern, weight, gate in R.HYPE:
        if gate.isdisjoint(words) and not (stars and "⭐" in pattern.pattern):
            continue
        m = pattern.search(plain)
        if m is not None:
            score += weight
            if first is None:
                first = _origin(m.start(), m.end(), where)
    if score >= 2 and first is not None:
        hits.append(
            _Hit(R.BY_ID["P151"], path, first, excerpt(text, *first), f"{score} advertising claims")
        )


def _check_chars(text: str, path: str, hits: list[_Hit]) -> None:
    for rule_id, start, end, detail in hidden_chars(text):
        span_excerpt = excerpt(text, start, min(end, start + 40))
        hits.append(_Hit(R.BY_ID[rule_id], path, (start, end), span_excerpt, detail))


def _check_confusable(name: str, path: str, hits: list[_Hit]) -> None:
    scripts = mixed_scripts(name)
    if scripts is not None:
        hits.append(_Hit(R.BY_ID["P165"], path, (0, len(name)), visible(name), scripts))


def _check_encoded(
    plain: str,
    text: str,
    where: list[int] | None,
    path: str,
    hits: list[_Hit],
    others: frozenset[str],
) -> None:
    blob = first_encoded_prose(plain)
    if blob is None:
        return
    start, end, decoded = blob
    inner: list[_Hit] = []
    _check_text(decoded, path, "text", inner, others, decoded=True)
    strong = [h for h in inner if h.rule.alone and severity_rank(h.rule.severity) >= 2]
    span = _origin(start, end, where)
    rule = R.BY_ID["P183" if strong else "P182"]
    detail = f"decodes to {visible(decoded, 80)!r}"
    hits.append(_Hit(rule, path, span, excerpt(text, *span), detail))


# ---------------------------------------------------------------------------- combining


def _secret_near(move: _Hit) -> _Hit | None:
    """A P121 mention of secrets within 300 characters of a data-move instruction."""
    if not move.source:
        return None
    lo = max(0, move.at - 300)
    window = move.source[lo : move.at + 300]
    for pattern in _P121.patterns:
        m = pattern.search(window)
        if m is not None:
            return _Hit(_P121, move.field, move.span, visible(m.group(0), 60))
    return None


def _points(hit: _Hit) -> int:
    return _POINTS[hit.severity or hit.rule.severity]


def _combine(hits: list[_Hit]) -> list[_Hit]:
    """The findings to report: each rule once per field, plus P130/P199 when weak signals
    of different kinds meet."""
    out: list[_Hit] = []
    seen: set[tuple[str, str]] = set()
    for hit in hits:
        key = (hit.rule.id, hit.field)
        if (hit.rule.alone or hit.severity) and key not in seen:
            seen.add(key)
            out.append(hit)
    secret = next((h for h in hits if h.rule.id == "P120"), None)
    moves = [h for h in hits if h.rule.id in ("P122", "P123", "P124", "P126")]
    if secret is None:
        secret = next((w for m in moves if (w := _secret_near(m)) is not None), None)
    if secret is not None and moves:
        move = moves[0]
        out.append(
            _Hit(
                R.BY_ID["P130"],
                move.field,
                move.span,
                move.excerpt,
                f"{secret.rule.title}; {move.rule.title}",
            )
        )
    best: dict[str, _Hit] = {}
    for hit in hits:
        if _points(hit) == 0 or hit.rule.category == "size":  # length alone says little
            continue
        held = best.get(hit.rule.category)
        if held is None or _points(hit) > _points(held):
            best[hit.rule.category] = hit
    total = sum(_points(h) for h in best.values())
    level = "critical" if total >= 7 else "high" if total >= 5 else "medium" if total >= 3 else ""
    current = max((_points(h) for h in out), default=0)
    if len(best) >= 2 and level and _POINTS[level] > current:
        top = max(best.values(), key=_points)
        kinds = ", ".join(sorted(best))
        out.append(
            _Hit(R.BY_ID["P199"], top.field, top.span, top.excerpt, f"{kinds}", severity=level)
        )
    return out
