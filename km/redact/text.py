"""Redacting free text: the value patterns, then `name = value` shapes (`km.redact.pairs`).

Cost is what this module is about: it runs on every captured message. Each pattern and each
sensitive key term has *needles*, lowercase substrings one of which any match contains. A text is
first scanned for needles (its `Scope`), and only the patterns whose needles it holds run their
regex. A payload is scanned once as a whole; its strings are then scanned only for the needles
the payload held (`Scope.narrow`), which usually leaves nothing to do.

Patterns are matched in a *shadow* of the text in which JSON escapes such as `\\n` read as a
backslash and a space, so that a token right after an escaped newline starts a word. A match
touching a marker is skipped, which keeps a second pass from finding what the first did not.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from km.redact.keys import KeyMatcher, ascii_lower
from km.redact.needles import BatchScanner, PayloadScanner, payload_scanners
from km.redact.pairs import redact_pairs
from km.redact.patterns import MARKER_PREFIX, ValuePattern, marker, redact_cards

_CARD_DIGITS = 13
# A larger payload holding 13 digits is not searched for a card number (it may hold one).
_CONFIRM_DIGITS_MAX = 8192
_DIGIT_RUNS = re.compile(r"[0-9](?:[ \-]?[0-9]){12,}")
_DIGIT_RUNS_B = re.compile(rb"[0-9](?:[ \-]?[0-9]){12,}")
_ESCAPES = ("\\n", "\\r", "\\t", "\\b", "\\f")


def _shadow(text: str) -> str:
    """`text` with JSON escapes such as `\\n` turned into a backslash and a space (same length),
    so that `a\\nghp_...` shows a token at the start of a word. Matches are found in the shadow
    and the values taken from the text."""
    if "\\" not in text:
        return text
    for esc in _ESCAPES:
        text = text.replace(esc, "\\ ")
    return text


@dataclass(frozen=True, slots=True)
class Scope:
    """What a text may hold: the needles found in it, a card number (`digits`), a match of a
    pattern without needles (`always`)."""

    needles: frozenset[str]
    digits: bool = False
    always: bool = False

    def narrow(self, text: str) -> Scope | None:
        """The part of this scope a piece of the scanned text holds; None for nothing.

        JSON may spell ASCII as `\\u0041` or `/` as `\\/`, which hides needles: a text with
        such escapes keeps the whole scope.
        """
        if "\\" in text and ("\\u00" in text or "\\/" in text):
            return self
        low = ascii_lower(text)
        hits = [n for n in self.needles if n in low]
        digits = self.digits and len(text) >= _CARD_DIGITS and _has_card(text)
        if hits or digits or self.always:
            return Scope(frozenset(hits), digits, self.always)
        return None


_PLANS_MAX = 1024  # distinct scopes remembered with the patterns they need


class TextRedactor:
    """Applies a rule set's value patterns and `name = value` redaction to text."""

    __slots__ = (
        "_always",
        "_everything",
        "_kv_needles",
        "_matcher",
        "_patterns",
        "_plans",
        "_scan",
        "_scan_many",
    )

    def __init__(
        self, patterns: tuple[ValuePattern, ...], matcher: KeyMatcher, kv_needles: Iterable[str]
    ) -> None:
        self._patterns = patterns
        self._matcher = matcher
        self._kv_needles = frozenset(kv_needles)
        needles = frozenset(n for p in patterns for n in p.needles) | self._kv_needles
        self._always = tuple(p for p in patterns if p.always)
        self._everything = Scope(needles, True, bool(self._always))
        self._scan: PayloadScanner | None = None  # built on first use: importing stays cheap
        self._scan_many: BatchScanner | None = None
        self._plans: dict[Scope, tuple[tuple[ValuePattern, ...], tuple[str, ...]]] = {}

    @property
    def everything(self) -> Scope:
        """The scope of a text not scanned yet: it may hold anything."""
        return self._everything

    def scan_payload(self, payload: bytes) -> Scope | None:
        """The scope of a raw payload; None when nothing in it can be redacted."""
        scan = self._scan
        if scan is None:
            scan = self._build_scanners()[0]
        hits, escaped, digits = scan(payload)
        if escaped:
            return self._everything
        if digits and len(payload) <= _CONFIRM_DIGITS_MAX:
            digits = any(
                redact_cards(run.decode()) is not None for run in _DIGIT_RUNS_B.findall(payload)
            )
        always = False
        if self._always:
            text = payload.decode("utf-8", "surrogateescape")
            always = any(p.regex.search(text) for p in self._always)
        if hits or digits or always:
            return Scope(frozenset(hits), digits, always)
        return None

    def clean_payloads(self, payloads: Sequence[bytes]) -> list[bool]:
        """For each payload, whether `scan_payload` would return None (nothing to redact),
        answered for many payloads at once: only those the batch scan flags are scanned one
        by one."""
        if self._always:  # patterns without needles: every payload is searched anyway
            return [self.scan_payload(p) is None for p in payloads]
        scan_many = self._scan_many
        if scan_many is None:
            scan_many = self._build_scanners()[1]
        scan = self.scan_payload
        return [
            not maybe or scan(p) is None
            for p, maybe in zip(payloads, scan_many(payloads), strict=True)
        ]

    def _build_scanners(self) -> tuple[PayloadScanner, BatchScanner]:
        self._scan, self._scan_many = payload_scanners(self._everything.needles, _CARD_DIGITS)
        return self._scan, self._scan_many

    def needs_structure(self, scope: Scope) -> bool:
        """Whether JSON text in this scope must be parsed and walked to be redacted.

        Not when only value patterns that cannot break JSON apply (an e-mail, a URL, a token
        inside its string): then the JSON text is redacted as text and keeps its layout. Key
        names need the structure, so do card numbers (a JSON number is not redacted), PEM blocks
        (one cut short runs to the end of its string) and patterns given in the rules.
        """
        return bool(
            scope.digits
            or scope.always
            or not scope.needles.isdisjoint(self._kv_needles)
            or "private key" in scope.needles
        )

    def redact(self, text: str, counts: Counter[str], scope: Scope) -> str:
        """`text` with every match replaced; the same object when nothing was.

        Only the patterns `scope` calls for run: pass `everything`, or a narrowed scope.
        """
        patterns, kv = self._plan(scope)
        shadow: str | None = None
        for p in patterns:
            if shadow is None:
                shadow = _shadow(text)
            new = _apply(p, text, shadow, counts)
            if new is not text:
                text = new
                shadow = None
        if kv:
            text = redact_pairs(text, kv, self._matcher, counts)
        return text

    def _plan(self, scope: Scope) -> tuple[tuple[ValuePattern, ...], tuple[str, ...]]:
        plan = self._plans.get(scope)
        if plan is None:
            patterns = tuple(
                p
                for p in self._patterns
                if (scope.always if p.always else p.digits and scope.digits)
                or not scope.needles.isdisjoint(p.needles)
            )
            kv = tuple(sorted(self._kv_needles & scope.needles))
            if len(self._plans) >= _PLANS_MAX:
                self._plans.clear()
            plan = self._plans[scope] = (patterns, kv)
        return plan


def _has_card(text: str) -> bool:
    """Whether a run of digits in `text` holds a card number (a millisecond timestamp does not)."""
    return any(redact_cards(run) is not None for run in _DIGIT_RUNS.findall(text))


_MARKER_BEFORE = re.compile(r"\[REDACTED:[a-z0-9_]+\]$")


def _next_to_marker(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] touches a marker. Such a match is skipped: where the marker is,
    a first pass saw the secret it replaced, which kept the match from being one, and a second
    pass must decide the same."""
    if text.startswith(MARKER_PREFIX, end):
        return True
    return (
        start > 0
        and text[start - 1] == "]"
        and _MARKER_BEFORE.search(text, max(0, start - 64), start) is not None
    )


def _apply(p: ValuePattern, text: str, shadow: str, counts: Counter[str]) -> str:
    """Replace the matches of `p` (found in `shadow`, taken from `text`); `text` if none."""
    out: list[str] = []
    done = 0
    replaced = 0
    has_v = "v" in p.regex.groupindex
    for m in p.regex.finditer(shadow):
        start = m.start()
        if start < done:
            continue
        if p.left is not None:
            extension = p.left.search(shadow, max(done, start - 64), start)
            if extension is None:
                continue
            start = extension.start()
        if start > 0 and shadow[start - 1] in p.not_after:
            continue
        if not p.delimited and _next_to_marker(shadow, start, m.end()):
            continue
        v_start, v_end = m.span("v") if has_v else (start, m.end())
        new = p.replace(text[v_start:v_end]) if p.replace is not None else marker(p.kind)
        if new is None:
            continue
        out.append(text[done:v_start])
        out.append(new)
        done = v_end
        replaced += new.count(MARKER_PREFIX)
    if not replaced:
        return text
    out.append(text[done:])
    counts[p.kind] += replaced
    return "".join(out)
