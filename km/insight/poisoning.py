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

import base64
import binascii
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from km.insight import poisoning_rules as R
from km.insight.findings import POISONING, Finding, severity_rank
from km.insight.text import (
    BIDI,
    TAG_FIRST,
    TAG_LAST,
    VS_SUP_FIRST,
    VS_SUP_LAST,
    ZERO_WIDTH,
    excerpt,
    strip_hidden,
    tag_text,
    visible,
)

MAX_DEPTH = 64  # deeper than any real schema; what lies below is reported (P192), not read
MAX_STRINGS = 20_000  # strings scanned per definition
MATCH_CHARS = 200_000  # text rules read at most this much of one field
LONG, HUGE = 10_000, 100_000  # P180, P181
VALUE_KEYS = frozenset(("default", "const", "enum", "examples", "example"))

_WORDS = re.compile(r"[a-z]+")
_PADDING = re.compile(r"(?:[ \t\u00a0\u3000]{60,}|(?:[ \t]*\r?\n){12,})(?=[^\n]*\S)")
_HEX_SPACED = re.compile(r"(?:\b[0-9a-fA-F]{2}[ :,-]){16,}[0-9a-fA-F]{2}\b")
_HEX_RUN = re.compile(r"\b(?:[0-9a-fA-F]{2}){24,}\b")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}")
_PROSE = re.compile(r"[A-Za-z]{2,}(?:[ ,.'\[\]:;-]+[A-Za-z]+){4,}")
_POINTS = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(slots=True)
class _Hit:
    rule: R.Rule
    field: str
    span: tuple[int, int]
    excerpt: str
    detail: str = ""
    severity: str = ""

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
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            kind = "null" if tool is None else type(tool).__name__
            hit = _Hit(R.BY_ID["P190"], f"tools[{index}]", (0, 0), visible(repr(tool), 60),
                       f"entry {index} is {kind}, not an object")
            findings.append(hit.finding(f"#{index}", server))
            continue
        name = tool.get("name")
        label = name if isinstance(name, str) else f"#{index}"
        others = known - {name} if isinstance(name, str) else known
        findings.extend(_scan(tool, label, server, others))
    for name, count in Counter(n for n in names if isinstance(n, str)).items():
        if count > 1:
            hit = _Hit(R.BY_ID["P191"], "name", (0, len(name)), visible(name),
                       f"{count} definitions named {visible(name, 60)!r}")
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
    return _scan(tool, label, server, frozenset(other_tools))


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
                hits.append(_Hit(R.BY_ID["P192"], path, (0, 0), "",
                                 f"more than {MAX_STRINGS} strings; the rest was not scanned"))
                return
            yield path, value, role
        elif isinstance(value, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                if not too_deep:
                    too_deep = True
                    hits.append(_Hit(R.BY_ID["P192"], path, (0, 0), "",
                                     f"nested deeper than {MAX_DEPTH} levels; not scanned below"))
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
    tool: Mapping[str, Any], label: str | None, server: str | None, others: frozenset[str]
) -> list[Finding]:
    hits: list[_Hit] = []
    name = tool.get("name")
    if not isinstance(name, str):
        what = "missing" if name is None else f"a {type(name).__name__}, not a string"
        hits.append(_Hit(R.BY_ID["P190"], "name", (0, 0), visible(repr(name), 60),
                         f"the name is {what}"))
    for key in ("description", "title"):
        if key in tool and not isinstance(tool[key], str):
            hits.append(_Hit(R.BY_ID["P190"], key, (0, 0), visible(repr(tool[key]), 60),
                             f"{key} is not a string"))
    for key in ("inputSchema", "outputSchema", "annotations"):
        if key in tool and not isinstance(tool[key], Mapping):
            hits.append(_Hit(R.BY_ID["P190"], key, (0, 0), visible(repr(tool[key]), 60),
                             f"{key} is not an object"))
    for path, text, role in _strings(tool, hits):
        if role == "param":
            _check_param(text, path, hits)
            continue
        if role == "key":
            if R.SUSPICIOUS_KEY.search(text):
                hits.append(_Hit(R.BY_ID["P171"], path, (0, len(text)), visible(text)))
            continue
        _check_text(text, path, role, hits, others)
    return [h.finding(label, server) for h in _combine(hits)]


# ---------------------------------------------------------------------------- per string


def _check_param(name: str, path: str, hits: list[_Hit]) -> None:
    normal = re.sub(r"[\s_\-.]", "", name.lower())
    if normal in R.SIDE_CHANNEL_NAMES:
        hits.append(_Hit(R.BY_ID["P126"], path, (0, len(name)), visible(name),
                         f"parameter {visible(name, 40)!r}"))
    _check_chars(name, path, hits)
    _check_confusable(name, path, hits)


def _check_text(
    text: str, path: str, role: str, hits: list[_Hit], others: frozenset[str], decoded: bool = False
) -> None:
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
    for rule in R.TEXT_RULES:
        if rule.triggers and rule.triggers.isdisjoint(words):
            continue
        for pattern in rule.patterns:
            match = _first(pattern, plain, rule.near)
            if match is None:
                continue
            if rule.id in ("P141", "P140") and any(o in match[2] for o in others if len(o) > 3):
                continue  # an ordering hint about a sibling tool of the same server
            start, end = _origin(match[0], match[1], where)
            hits.append(_Hit(rule, path, (start, end), excerpt(text, start, end)))
            break
    if not words.isdisjoint(R.HYPE_TRIGGERS) or "⭐" in plain:
        _check_hype(plain, text, where, path, hits)
    if role == "value" and R.SCHEMA_VALUE_INSTRUCTION.search(plain) and len(plain) >= 20:
        hits.append(_Hit(R.BY_ID["P170"], path, (0, len(text)), visible(text, 80)))
    padding = _PADDING.search(body)
    if padding is not None:
        hits.append(_Hit(R.BY_ID["P111"], path, padding.span(),
                         excerpt(text, padding.start(), padding.end())))
    if not decoded and size >= 40:
        _check_encoded(plain, text, where, path, hits, others)


def _first(
    pattern: re.Pattern[str], text: str, near: re.Pattern[str] | None
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
    plain: str, text: str, where: list[int] | None, path: str, hits: list[_Hit]
) -> None:
    score = 0
    first: tuple[int, int] | None = None
    for pattern, weight in R.HYPE:
        m = pattern.search(plain)
        if m is not None:
            score += weight
            if first is None:
                first = _origin(m.start(), m.end(), where)
    if score >= 2 and first is not None:
        hits.append(_Hit(R.BY_ID["P151"], path, first, excerpt(text, *first),
                         f"{score} advertising claims"))


def _check_chars(text: str, path: str, hits: list[_Hit]) -> None:
    tags: list[int] = []
    bidi: list[int] = []
    invisible: list[int] = []
    ansi: list[int] = []
    control: list[int] = []
    for i, ch in enumerate(text):
        cp = ord(ch)
        if cp < 0x20 or 0x7F <= cp <= 0x9F:
            if cp in (0x1B, 0x9B):
                ansi.append(i)
            elif ch in "\n\t" or (ch == "\r" and text[i + 1 : i + 2] == "\n"):
                continue
            else:
                control.append(i)
        elif cp < 0xA0:
            continue
        elif TAG_FIRST <= cp <= TAG_LAST:
            tags.append(i)
        elif cp in BIDI:
            bidi.append(i)
        elif cp in ZERO_WIDTH or cp == 0xAD or VS_SUP_FIRST <= cp <= VS_SUP_LAST or (
            not ch.isprintable() and unicodedata.category(ch) == "Cf"
        ):
            if cp == 0x200D and 0 < i < len(text) - 1 and not text[i - 1].isascii() and not (
                text[i + 1].isascii()
            ):
                continue  # a zero-width joiner inside an emoji sequence
            invisible.append(i)
    for rule_id, where in (
        ("P160", tags), ("P161", bidi), ("P162", invisible), ("P163", ansi), ("P164", control)
    ):
        if not where:
            continue
        start, end = where[0], where[-1] + 1
        detail = f"{len(where)} at offset {start}"
        if rule_id == "P160":
            detail += f", hidden text {visible(tag_text(text), 80)!r}"
        hits.append(_Hit(R.BY_ID[rule_id], path, (start, end),
                         excerpt(text, start, min(end, start + 40)), detail))


def _check_confusable(name: str, path: str, hits: list[_Hit]) -> None:
    if name.isascii():
        return
    scripts = set()
    for ch in name:
        if ch.isalpha():
            scripts.add(unicodedata.name(ch, "X").split(" ")[0])
    if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"}:
        hits.append(_Hit(R.BY_ID["P165"], path, (0, len(name)), visible(name),
                         "scripts " + ", ".join(sorted(scripts)).lower()))


def _check_encoded(
    plain: str, text: str, where: list[int] | None, path: str, hits: list[_Hit],
    others: frozenset[str],
) -> None:
    for pattern, decode in ((_HEX_SPACED, _unhex), (_HEX_RUN, _unhex), (_BASE64, _unbase64)):
        for m in pattern.finditer(plain):
            decoded = decode(m.group(0))
            if decoded is None or not _PROSE.search(decoded):
                continue
            inner: list[_Hit] = []
            _check_text(decoded, path, "text", inner, others, decoded=True)
            strong = [h for h in inner if h.rule.alone and severity_rank(h.rule.severity) >= 2]
            span = _origin(m.start(), m.end(), where)
            rule = R.BY_ID["P183" if strong else "P182"]
            detail = f"decodes to {visible(decoded, 80)!r}"
            hits.append(_Hit(rule, path, span, excerpt(text, *span), detail))
            return


def _unhex(blob: str) -> str | None:
    digits = re.sub(r"[^0-9a-fA-F]", "", blob)
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return _readable(raw)


def _unbase64(blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(raw)


def _readable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\n\t")
    return text if text and printable >= 0.95 * len(text) else None


# ---------------------------------------------------------------------------- combining


def _combine(hits: list[_Hit]) -> list[_Hit]:
    """The findings to report: each rule once per field, plus P130/P199 when weak signals
    of different kinds meet."""
    out: list[_Hit] = []
    seen: set[tuple[str, str]] = set()
    for hit in hits:
        key = (hit.rule.id, hit.field)
        if hit.rule.alone and key not in seen:
            seen.add(key)
            out.append(hit)
    secret = next((h for h in hits if h.rule.id == "P120"), None)
    moves = [h for h in hits if h.rule.id in ("P122", "P123", "P124", "P126")]
    if secret is None and moves:
        words = [h for h in hits if h.rule.id == "P121"]
        secret = next(
            (w for w in words for m in moves
             if w.field == m.field and abs(w.span[0] - m.span[0]) < 300),
            None,
        )
    if secret is not None and moves:
        move = moves[0]
        out.append(_Hit(R.BY_ID["P130"], move.field, move.span, move.excerpt,
                        f"{secret.rule.title} ({secret.excerpt}) and {move.rule.title}"))
    best: dict[str, _Hit] = {}
    for hit in hits:
        if _POINTS[hit.rule.severity] == 0:
            continue
        held = best.get(hit.rule.category)
        if held is None or _POINTS[hit.rule.severity] > _POINTS[held.rule.severity]:
            best[hit.rule.category] = hit
    total = sum(_POINTS[h.rule.severity] for h in best.values())
    level = "critical" if total >= 7 else "high" if total >= 5 else "medium" if total >= 3 else ""
    current = max((_POINTS[h.severity or h.rule.severity] for h in out), default=0)
    if len(best) >= 2 and level and _POINTS[level] > current:
        top = max(best.values(), key=lambda h: _POINTS[h.rule.severity])
        kinds = ", ".join(sorted(best))
        out.append(_Hit(R.BY_ID["P199"], top.field, top.span, top.excerpt,
                        f"{kinds}", severity=level))
    return out
