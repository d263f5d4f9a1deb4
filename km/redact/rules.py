"""`RedactionRules`: what counts as a secret, validated and compiled once when built."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from km.errors import KmError
from km.redact.keys import KeyMatcher, key_words
from km.redact.patterns import BUILTIN_KINDS, BUILTIN_PATTERNS, KIND_RE, ValuePattern, marker
from km.redact.text import TextRedactor

DEFAULT_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "x-api-key",
        "authorization",
        "auth",
        "cookie",
        "cookies",
        "set-cookie",
        "session",
        "private_key",
        "client_secret",
        "credential",
        "credentials",
    }
)
"""Key terms whose values are secrets, matched as word sequences (see `km.redact.keys`)."""

DEFAULT_NEUTRAL_WORDS: frozenset[str] = frozenset(
    {
        # counters and limits: token_count, tokenLimit, max_token, password_min_length
        "count",
        "counts",
        "used",
        "usage",
        "limit",
        "limits",
        "max",
        "min",
        "total",
        "num",
        "number",
        "length",
        "len",
        "size",
        "budget",
        "remaining",
        "index",
        # the kind or lifetime of a secret, not the secret: token_type, expires_in, session_timeout
        "type",
        "expires",
        "expiry",
        "expiration",
        "ttl",
        "timeout",
        # where or how to authenticate: token_endpoint, auth_url, auth_methods_supported
        "endpoint",
        "url",
        "uri",
        "method",
        "methods",
        "supported",
    }
)
"""A key holding one of these words names a count, kind or place, and is never redacted."""

DEFAULT_SAFE_KEYS: frozenset[str] = frozenset({"progressToken"})
"""Exact key names never redacted (any case or separators): MCP protocol fields."""


class RedactionRuleError(KmError):
    """A redaction rule given in the configuration is not usable."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"redaction rule {rule!r}: {reason}")
        self.rule = rule
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Compiled:
    """The regexes and matchers a rule set needs at run time."""

    matcher: KeyMatcher
    text: TextRedactor
    # JSON keys seen to need no redaction themselves, and whether their values are secrets
    key_cache: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RedactionRules:
    """What to redact. Build once (construction compiles and validates) and share it.

    `keys` are the sensitive key terms (replace them all, or add to the defaults with
    `extra_keys`). `kinds` selects the built-in value patterns by kind; `extra_patterns` adds
    `(kind, regex)` pairs matched in every string (a named group `v`, if the regex has one, is
    the part replaced: `(?i)pin[:=](?P<v>[0-9]{4})`). With `metadata_only`, payloads are replaced
    whole by a marker. Sets may be given as `set`s; they are stored as `frozenset`s, so that
    rules are hashable values. Raises `RedactionRuleError` for a bad regex, kind or key.
    """

    keys: AbstractSet[str] = DEFAULT_KEYS
    extra_keys: AbstractSet[str] = frozenset()
    neutral_words: AbstractSet[str] = DEFAULT_NEUTRAL_WORDS
    safe_keys: AbstractSet[str] = DEFAULT_SAFE_KEYS
    kinds: AbstractSet[str] = BUILTIN_KINDS
    extra_patterns: Sequence[tuple[str, str]] = ()
    metadata_only: bool = False
    compiled: Compiled = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("keys", "extra_keys", "neutral_words", "safe_keys", "kinds"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        object.__setattr__(self, "extra_patterns", tuple(tuple(p) for p in self.extra_patterns))
        object.__setattr__(self, "compiled", _compile(self))

    def is_sensitive_key(self, name: str) -> bool:
        """Whether a value stored under the key `name` is replaced whole."""
        return self.compiled.matcher(name)


def _compile(rules: RedactionRules) -> Compiled:
    terms = rules.keys | rules.extra_keys
    for term in terms:
        if not key_words(term):
            raise RedactionRuleError(term, "a key term needs at least one letter or digit")
    unknown = rules.kinds - BUILTIN_KINDS
    if unknown:
        known = ", ".join(sorted(BUILTIN_KINDS))
        raise RedactionRuleError(", ".join(sorted(unknown)), f"unknown kind; known: {known}")
    patterns = [p for p in BUILTIN_PATTERNS if p.kind in rules.kinds]
    patterns.extend(_extra_pattern(kind, source) for kind, source in rules.extra_patterns)
    matcher = KeyMatcher(terms, rules.neutral_words, rules.safe_keys)
    text = TextRedactor(tuple(patterns), matcher, _needles(terms))
    return Compiled(matcher, text)


def _extra_pattern(kind: str, source: str) -> ValuePattern:
    if not KIND_RE.fullmatch(kind):
        raise RedactionRuleError(kind, "a kind is lowercase letters, digits and _")
    try:
        regex = re.compile(source)
    except re.error as exc:
        raise RedactionRuleError(source, f"not a valid regex: {exc}") from None
    if regex.fullmatch("") is not None:
        raise RedactionRuleError(source, "the regex matches the empty string")
    if regex.search(f"{marker(kind)} {marker('key')}") is not None:
        raise RedactionRuleError(source, "the regex matches a marker such as [REDACTED:key]")
    return ValuePattern(kind, regex)


def _needles(terms: Iterable[str]) -> tuple[str, ...]:
    """Lowercase substrings, one of which occurs in any spelling of any term.

    A one-word term is its own needle; a longer term needs none when one of its words holds a
    one-word term (`access_token` has `token`), and is otherwise represented by its longest word.
    A needle containing another is dropped (`authorization` is found by looking for `auth`).
    """
    seqs = [ws for ws in map(key_words, terms) if ws]
    single = {ws[0] for ws in seqs if len(ws) == 1}
    words = set(single)
    for ws in seqs:
        if len(ws) > 1 and not any(n in w for w in ws for n in single):
            words.add(max(ws, key=len))
    return tuple(sorted(w for w in words if not any(o != w and o in w for o in words)))


DEFAULT_RULES = RedactionRules()
