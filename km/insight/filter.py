"""The filter language (sans-IO): one grammar for `km tail`, `km sessions`, `km show`, exports,
the API's `q=` and the dashboard. docs/filters.md is the user's description.

    tool:git_* -status:ok latency>500ms          fields, globs, negation, comparisons
    (server:github OR server:gitlab) since:1h      OR and parentheses; implicit AND
    "permission denied" finding:high               free text over payloads; findings

`parse(text, now_ns=...)` turns the text into a `Filter` (a small tree of frozen nodes) or
raises `FilterError`, which names the column and what was expected. `matches(filter, event)`
evaluates it over one event mapping; `km.insight.filter_sql.to_sql` compiles the same tree to
SQL for the spool and the server (SQLite and PostgreSQL). Both give the same answers: the
property tests in tests/insight/test_filter_equivalence.py hold them to it.

Semantics every backend shares:
- Text values match exactly and case-sensitively; `*` (any run) and `?` (one character) make
  them globs, `\\*` and `\\?` are literal. An event without the field (NULL) never matches a
  positive term, so `-tool:x` selects events that have no tool too.
- Free text (`"..."` or a bare word) matches a payload containing it, ASCII letters compared
  without case, on the payload's bytes (its UTF-8 encoding for the search text).
- `status:pending` / `status:cancelled` are derived for requests (no reply linked yet / a
  `notifications/cancelled` linked); the other statuses are stored on replies.
- Relative times (`since:1h`) count back from the `now_ns` given to `parse`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from km.errors import UsageError

# Fields: text fields (glob), enumerations, numbers, times, findings.
TEXT_FIELDS = {"server": "server", "session": "session_id", "tool": "tool", "method": "method"}
KINDS = ("request", "response", "error", "notification", "batch", "invalid", "dropped")
STATUSES = ("ok", "error", "tool-error", "pending", "cancelled")
DIRECTIONS = ("c2s", "s2c", "km")
ENUM_FIELDS = {
    "kind": ("kind", KINDS),
    "status": ("status", STATUSES),
    "dir": ("direction", DIRECTIONS),
}
NUMBER_FIELDS = {"risk": "risk", "latency": "latency_us", "size": "size", "tokens": "tokens"}
TIME_FIELDS = ("since", "until")
FINDING_FIELD = "finding"
ALIASES = {"direction": "dir", "findings": "finding", "sessions": "session", "servers": "server"}
FIELDS = (*TEXT_FIELDS, *ENUM_FIELDS, *NUMBER_FIELDS, *TIME_FIELDS, FINDING_FIELD)
OPERATORS = (">=", "<=", "!=", ">", "<", "=")
MAX_INT = 2**63 - 1
MAX_LENGTH = 4096  # characters of filter text

_UNITS = {
    "latency_us": ({"": 1000, "us": 1, "µs": 1, "ms": 1000, "s": 1_000_000}, "500ms, 2s or 800us"),
    "size": ({"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
              "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}, "2048, 64k or 1m"),
    "tokens": ({"": 1, "k": 1000, "m": 1_000_000}, "500 or 2k"),
    "risk": ({"": 1}, "a number from 0 to 100"),
}  # fmt: skip
_AGO = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([a-zµ]*)", re.IGNORECASE)
_WORD_END = frozenset(" \t\r\n()")
_FIELD_NAME = re.compile(r"[A-Za-z_-]+")


class FilterError(UsageError):
    """A filter that does not parse: where (`column`, 1-based) and what was expected."""

    def __init__(self, text: str, column: int, expected: str) -> None:
        super().__init__(f"bad filter at column {column}: {expected}")
        self.text = text
        self.column = column
        self.expected = expected

    def caret(self) -> str:
        """Two lines for a terminal: the filter, and a caret under the column."""
        shown = "".join(c if c.isprintable() else "?" for c in self.text)
        return f"  {shown}\n  {' ' * (self.column - 1)}^"


# -- the tree ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class All:
    """No condition: every event (the empty filter)."""


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Node


@dataclass(frozen=True, slots=True)
class Text:
    """Free text: the payload contains `needle` (ASCII case folded)."""

    needle: str


@dataclass(frozen=True, slots=True)
class Match:
    """A text or enumerated column equals `value`, or matches it as a glob."""

    column: str  # event column: server, session_id, tool, method, kind, status, direction
    value: str
    glob: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """A numeric column compared with a number: risk, latency_us, size, tokens, ts_ns."""

    column: str
    op: str  # one of OPERATORS
    value: int


@dataclass(frozen=True, slots=True)
class HasFinding:
    """The event has a finding whose rule, kind or severity matches `value` (a glob)."""

    value: str
    glob: bool = False


Node = All | And | Or | Not | Text | Match | Compare | HasFinding


@dataclass(frozen=True, slots=True)
class Filter:
    text: str
    root: Node

    def columns(self) -> frozenset[str]:
        """The event columns (and `payload`, `findings`) this filter looks at."""
        found: set[str] = set()
        _collect(self.root, found)
        return frozenset(found)


def _collect(node: Node, found: set[str]) -> None:
    if isinstance(node, And | Or):
        for part in node.parts:
            _collect(part, found)
    elif isinstance(node, Not):
        _collect(node.part, found)
    elif isinstance(node, Text):
        found.add("payload")
    elif isinstance(node, Match | Compare):
        found.add(node.column)
    elif isinstance(node, HasFinding):
        found.add("findings")


# -- parsing -----------------------------------------------------------------------------------


def parse(text: str, *, now_ns: int, tz: tzinfo = UTC) -> Filter:
    """The filter `text` means; `FilterError` if it does not parse. `now_ns` anchors relative
    times (`since:1h`); `tz` is the zone of ISO times written without one."""
    if len(text) > MAX_LENGTH:
        raise FilterError(text[:80], 1, f"a filter of at most {MAX_LENGTH} characters")
    for i, ch in enumerate(text):
        if ch == "\x00" or "\ud800" <= ch <= "\udfff":
            raise FilterError(text, i + 1, "text without NUL or unpaired surrogates")
    parser = _Parser(text, now_ns, tz)
    return Filter(text, parser.parse())


class _Parser:
    """Recursive descent over the text itself (no token list: values need their raw text).

    query := or ; or := and ("OR" and)* ; and := unary (["AND"] unary)*
    unary := ("NOT" | "-") unary | "(" or ")" | term
    """

    def __init__(self, text: str, now_ns: int, tz: tzinfo) -> None:
        self.text = text
        self.pos = 0
        self.now_ns = now_ns
        self.tz = tz

    def fail(self, expected: str, at: int | None = None) -> FilterError:
        return FilterError(self.text, (self.pos if at is None else at) + 1, expected)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text)

    def peek_keyword(self, word: str) -> bool:
        """Whether `word` (upper case, a whole word) comes next."""
        self.skip_space()
        end = self.pos + len(word)
        return self.text.startswith(word, self.pos) and (
            end >= len(self.text) or self.text[end] in _WORD_END
        )

    def keyword(self, word: str) -> bool:
        """Consume `word` if it comes next."""
        if self.peek_keyword(word):
            self.pos += len(word)
            return True
        return False

    def parse(self) -> Node:
        if self.at_end():
            return All()
        node = self.parse_or()
        if not self.at_end():
            if self.text[self.pos] == ")":
                raise self.fail("no `)` without a matching `(`")
            raise self.fail("a term, `OR` or the end of the filter")  # pragma: no cover
        return node

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.keyword("OR"):
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self) -> Node:
        parts = [self.parse_unary()]
        while True:
            if self.at_end() or self.text[self.pos] == ")":
                break
            if self.peek_keyword("OR"):
                break
            self.keyword("AND")
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_unary(self) -> Node:
        if self.at_end():
            raise self.fail('a term (e.g. tool:NAME, latency>500ms or "text")')
        start = self.pos
        if self.keyword("NOT"):
            return Not(self.parse_unary())
        if self.keyword("AND") or self.keyword("OR"):
            raise self.fail("a term before and after AND / OR", start)
        ch = self.text[self.pos]
        if ch == "-" and self.pos + 1 < len(self.text) and not self.text[self.pos + 1].isspace():
            self.pos += 1
            return Not(self.parse_unary())
        if ch == "(":
            self.pos += 1
            node = self.parse_or()
            if self.at_end() or self.text[self.pos] != ")":
                raise self.fail("`)` to close the `(` at column " + str(start + 1))
            self.pos += 1
            return node
        if ch == ")":
            raise self.fail("a term before `)`")
        if ch == '"':
            return self.text_term(self.quoted(), start)
        return self.term()

    def quoted(self) -> str:
        """A double-quoted string at `pos` (`\\"` and `\\\\` escape); its content."""
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == '"':
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise self.fail(f'a closing `"` for the quote at column {start + 1}')

    def text_term(self, needle: str, at: int | None = None) -> Node:
        if not needle:
            raise self.fail("some text between the quotes", at)
        return Text(needle)

    def word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _WORD_END:
            self.pos += 1
        return self.text[start : self.pos]

    def term(self) -> Node:
        start = self.pos
        name = _FIELD_NAME.match(self.text, self.pos)
        if name is not None:
            after = name.end()
            rest = self.text[after : after + 2]
            op = next((o for o in OPERATORS if rest.startswith(o)), None)
            if op is not None or rest.startswith(":"):
                field = name.group().lower()
                field = ALIASES.get(field, field)
                if field not in FIELDS:
                    raise self.fail(
                        f"a known field, not {name.group()!r} (one of {', '.join(FIELDS)};"
                        " quote text that holds a colon)",
                        start,
                    )
                self.pos = after
                return self.field_term(field, start)
        word = self.word()
        return self.text_term(word, start)

    def field_term(self, field: str, start: int) -> Node:
        op = ":"
        if self.text[self.pos] == ":":
            self.pos += 1
        rest = self.text[self.pos : self.pos + 2]
        found = next((o for o in OPERATORS if rest.startswith(o)), None)
        if found is not None:
            op = found
            self.pos += len(found)
        value_at = self.pos
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            value, quoted = self.quoted(), True
        else:
            value, quoted = self.word(), False
        if not value:
            raise self.fail(f"a value after `{self.text[start:value_at]}`", value_at)
        if field in NUMBER_FIELDS:
            return self.number_term(NUMBER_FIELDS[field], op, value, value_at)
        if field in TIME_FIELDS:
            if op not in (":", "="):
                raise self.fail(f"`{field}:` followed by a time such as 1h or 2026-12-01", start)
            ns = self.time_value(value, value_at)
            return Compare("ts_ns", ">=" if field == "since" else "<", ns)
        if op not in (":", "="):
            if op == "!=":
                raise self.fail(f"`-{field}:VALUE` to exclude a value", start)
            raise self.fail(f"`{field}:VALUE` (comparisons are for numbers)", start)
        if field in ENUM_FIELDS:
            column, allowed = ENUM_FIELDS[field]
            lowered = value.lower()
            if lowered not in allowed:
                raise self.fail(f"{field} to be one of {', '.join(allowed)}", value_at)
            return Match(column, lowered)
        pattern, glob = (value, False) if quoted else _unescape(value)
        if field == FINDING_FIELD:
            return HasFinding(pattern, glob)
        return Match(TEXT_FIELDS[field], pattern, glob)

    def number_term(self, column: str, op: str, value: str, at: int) -> Node:
        units, example = _UNITS[column]
        found = _NUMBER.fullmatch(value)
        unit = found.group(2).lower() if found else ""
        if found is None or unit not in units:
            raise self.fail(f"a number such as {example}", at)
        number = round(float(found.group(1)) * units[unit])
        if number > MAX_INT:
            raise self.fail(f"a number below {MAX_INT}", at)
        return (
            Not(Compare(column, "=", number))
            if op == "!="
            else Compare(column, "=" if op == ":" else op, number)
        )

    def time_value(self, value: str, at: int) -> int:
        found = _NUMBER.fullmatch(value)
        if found is not None and found.group(2).lower() in _AGO:
            seconds = float(found.group(1)) * _AGO[found.group(2).lower()]
            return self.now_ns - round(seconds * 1e9)
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise self.fail(
                "a time such as 30m, 1h, 2d or 2026-12-01T15:00:00Z (s, m, h, d, w)", at
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=self.tz)
        delta = stamp - datetime(1970, 1, 1, tzinfo=UTC)
        return delta // timedelta(microseconds=1) * 1000


def _unescape(value: str) -> tuple[str, bool]:
    """A typed value as a glob pattern in a canonical form: `*` and `?` are wildcards,
    `\\*`, `\\?` and `\\\\` literals (kept escaped). Returns (pattern, is a glob); a value with
    no wildcard comes back unescaped, for an exact comparison."""
    out: list[str] = []
    glob = False
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in "*?\\":
            out.append("\\" + value[i + 1])
            i += 2
            continue
        if ch in "*?":
            glob = True
        out.append("\\\\" if ch == "\\" else ch)
        i += 1
    pattern = "".join(out)
    if glob:
        return pattern, True
    return "".join(literal for literal, _ in glob_parts(pattern)), False


def glob_parts(pattern: str) -> list[tuple[str, bool]]:
    """A canonical glob pattern as (piece, is a wildcard) pairs: wildcards are `*` and `?`,
    everything else literal text."""
    parts: list[tuple[str, bool]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append((pattern[i + 1], False))
            i += 2
        else:
            parts.append((ch, ch in "*?"))
            i += 1
    return parts


# -- evaluation in memory ----------------------------------------------------------------------


def effective_status(
    kind: str | None, status: str | None, replied: bool, cancelled: bool
) -> str | None:
    """The status a filter sees: stored on replies; derived for requests (`cancelled` when a
    cancellation is linked, else `pending` when no reply is linked yet); None otherwise."""
    if kind == "request":
        if cancelled:
            return "cancelled"
        return None if replied else "pending"
    return status


def fold(data: bytes) -> bytes:
    """ASCII letters to lower case, every other byte unchanged (what SQLite's lower() does)."""
    return data.lower()


def matches(flt: Filter, event: Mapping[str, Any]) -> bool:
    """Whether `event` passes the filter. `event` maps the column names (`server`,
    `session_id`, `tool`, `method`, `kind`, `status` (already `effective_status`),
    `direction`, `risk`, `latency_us`, `size`, `tokens`, `ts_ns`) to values or None, `payload`
    to bytes, and `findings` to mappings with `rule`, `kind` and `severity`."""
    return _eval(flt.root, event)


def predicate(flt: Filter) -> Callable[[Mapping[str, Any]], bool]:
    root = flt.root
    return lambda event: _eval(root, event)


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _eval(node: Node, event: Mapping[str, Any]) -> bool:
    if isinstance(node, And):
        return all(_eval(p, event) for p in node.parts)
    if isinstance(node, Or):
        return any(_eval(p, event) for p in node.parts)
    if isinstance(node, Not):
        return not _eval(node.part, event)
    if isinstance(node, Match):
        value = event.get(node.column)
        if value is None:
            return False
        return (
            _glob_regex(node.value).fullmatch(value) is not None
            if node.glob
            else value == node.value
        )
    if isinstance(node, Compare):
        number = event.get(node.column)
        return number is not None and _COMPARE[node.op](number, node.value)
    if isinstance(node, Text):
        payload = event.get("payload")
        return payload is not None and fold(node.needle.encode("utf-8")) in fold(bytes(payload))
    if isinstance(node, HasFinding):
        return any(_finding_matches(node, f) for f in _findings(event))
    return True  # All


def _findings(event: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    found = event.get("findings")
    return found if found is not None else ()


def _finding_matches(node: HasFinding, finding: Mapping[str, Any]) -> bool:
    for key in ("rule", "kind", "severity"):
        value = finding.get(key)
        if value is None:
            continue
        if node.glob:
            if _glob_regex(node.value).fullmatch(value) is not None:
                return True
        elif value == node.value:
            return True
    return False


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        pieces = [
            (".*" if piece == "*" else ".") if wild else re.escape(piece)
            for piece, wild in glob_parts(pattern)
        ]
        compiled = re.compile("".join(pieces), re.DOTALL)
        if len(_REGEX_CACHE) < 256:
            _REGEX_CACHE[pattern] = compiled
    return compiled
