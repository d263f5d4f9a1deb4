"""Deciding whether a key name (a JSON member, a header, an environment variable) holds a secret.

A name is split into lowercase words at separators, camelCase humps and digit runs:
`GITHUB_PERSONAL_ACCESS_TOKEN` -> (github, personal, access, token), `githubToken` -> (github,
token), `X-API-Key` -> (x, api, key), `APIKey` -> (api, key). It is sensitive when

1. the words of a sensitive term occur in it consecutively (`db_password`, `x-api-key`), or
2. one of its words, or all of them run together, ends with a term written as one word
   (`githubtoken`, `XAPIKey` -> `xapikey`, `dbpassword`); terms shorter than five letters must be
   the whole word, so `oauth` is not `auth`;

unless one of its words is a *neutral* word naming a count, a limit or a kind rather than the
secret itself (`token_count`, `tokenLimit`, `auth_type`, `password_min_length`), or the whole
name is a known safe name (`progressToken`, an MCP protocol field). Plurals are separate words:
`tokens` is not `token`, which keeps LLM usage counters (`max_tokens`, `input_tokens`,
`tokens_used`) in clear; the default terms list the plurals that are secrets (`secrets`).

Markers (`[REDACTED:github_token]`) are not part of a name, so that a key redacted once is
judged the same way again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from km.redact.patterns import MARKER_PREFIX, MARKER_RE

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SUFFIX_MIN = 5  # a term this long may end a longer word; shorter ones (`auth`) must be whole
_CACHE_MAX = 8192  # distinct key names remembered; the set is cleared when it grows past this


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """`text` with A-Z lowered and nothing else changed, so that positions stay valid
    (`str.lower` turns `İ` into two characters)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def key_words(name: str) -> tuple[str, ...]:
    """The lowercase words of a key name: `XApiKey` -> ('x', 'api', 'key')."""
    # "OAuth" is one word (it would otherwise split into "o", "auth").
    name = name.replace("OAuth", "Oauth").replace("OAUTH", "Oauth")
    return tuple(w.lower() for w in _WORDS.findall(name))


class KeyMatcher:
    """Sensitive-key decisions for one set of rules, memoized per name."""

    __slots__ = ("_by_first", "_cache", "_exact", "_neutral", "_safe", "_suffix")

    def __init__(
        self, terms: Iterable[str], neutral_words: Iterable[str], safe_keys: Iterable[str]
    ) -> None:
        seqs = {key_words(t) for t in terms}
        seqs.discard(())
        by_first: dict[str, list[tuple[str, ...]]] = {}
        for seq in sorted(seqs):
            by_first.setdefault(seq[0], []).append(seq)
        self._by_first = {word: tuple(group) for word, group in by_first.items()}
        joined = {"".join(s) for s in seqs}
        self._exact = frozenset(joined)
        long_terms = sorted((t for t in joined if len(t) >= _SUFFIX_MIN), key=len, reverse=True)
        # `(?!)` never matches: no term is long enough to end a longer word
        alternatives = "|".join(map(re.escape, long_terms)) or "(?!)"
        self._suffix = re.compile(f"(?:{alternatives})$")
        self._neutral = frozenset(w.lower() for w in neutral_words)
        self._safe = frozenset("".join(key_words(k)) for k in safe_keys)
        self._cache: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        """Whether a value stored under `name` is a secret."""
        hit = self._cache.get(name)
        if hit is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            # A marker left by an earlier redaction is not part of the name.
            words = key_words(MARKER_RE.sub(" ", name) if MARKER_PREFIX in name else name)
            hit = self._cache[name] = self._decide(words)
        return hit

    def _decide(self, words: tuple[str, ...]) -> bool:
        if not words or "".join(words) in self._safe:
            return False
        if not self._neutral.isdisjoint(words):
            return False
        n = len(words)
        for i, word in enumerate(words):
            for seq in self._by_first.get(word, ()):
                if words[i : i + len(seq)] == seq:
                    return True
        candidates = (*words, "".join(words)) if n > 1 else words
        return any(word in self._exact or self._suffix.search(word) for word in candidates)
