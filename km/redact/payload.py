"""Redacting one captured JSON-RPC message.

The fast path tests the raw bytes for any needle of any pattern or sensitive name
(`TextRedactor.scan_payload`) and returns the payload itself when there is none. Otherwise
the payload is parsed with orjson and walked:

- a value under a sensitive key becomes `"[REDACTED:key]"` whatever its type, and so does the
  `value` of a `{"name": <sensitive>, "value": ...}` pair (env lists, header lists);
- every other string, and every key, goes through the value patterns and `name = value`
  redaction; a string holding a JSON object or array is parsed, walked and written back when
  its secrets need the structure (`TextRedactor.needs_structure`), and redacted as text when
  only value patterns apply;
- the top-level `jsonrpc`, `id` and `method` members (of each message of a batch) are kept as
  they are when they hold a scalar, as they do in JSON-RPC.

A payload is serialized again only if something changed, so an unchanged payload comes back
byte-identical (the same object). A payload that is not JSON (a banner line, a frame cut at the
payload cap, invalid UTF-8) is redacted as text, with invalid bytes carried through unchanged.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from km.redact.patterns import marker
from km.redact.rules import DEFAULT_RULES, Compiled, RedactionRules
from km.redact.text import Scope

ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method"})
_SCALARS = frozenset({str, int, float, bool, type(None)})  # an envelope member holding more is data
METADATA_ONLY_PAYLOAD = b'"[REDACTED:payload]"'
"""What a payload becomes under `metadata_only` rules (method and id are stored apart)."""

_KEY = marker("key")
_MAX_DEPTH = 256  # deeper JSON is redacted as text rather than walked (recursion limit)
_KEY_CACHE_MAX = 8192  # keys known to need no redaction themselves, per rule set
# Integers past 64 bits come out of orjson as floats: such JSON is redacted as text instead.
_BIG_INT = re.compile(rb"[:\[,]\s*-?[0-9]{20}")
_BIG_INT_S = re.compile(r"[:\[,]\s*-?[0-9]{20}")
# A JSON Schema: the members of a "properties" object are schemas named after the property
# (`"password": {"type": "string"}`), not values; they are walked, not replaced.
_SCHEMA_WORDS = frozenset(
    {
        "type", "description", "title", "default", "examples", "enum", "const", "format",
        "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "items", "properties", "required", "nullable",
        "additionalProperties", "patternProperties", "propertyNames", "anyOf", "oneOf", "allOf",
        "not", "$ref", "$schema", "$id", "$defs", "$comment", "definitions", "deprecated",
        "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "minItems", "maxItems",
        "uniqueItems", "minProperties", "maxProperties",
    }
)  # fmt: skip


class _TooDeep(Exception):
    pass


def redact_payload(payload: bytes, rules: RedactionRules = DEFAULT_RULES) -> bytes:
    """The payload with its secrets replaced by markers; `payload` itself when it has none."""
    return _redact(payload, rules, Counter())


def unchanged_payloads(
    payloads: Sequence[bytes], rules: RedactionRules = DEFAULT_RULES
) -> list[bool]:
    """For each payload, True when `redact_payload` would return it as it is because nothing
    in it can be redacted: one pre-scan for all of them (see `TextRedactor.clean_payloads`).
    False: redact it (with `redact_payload`, which may still find nothing)."""
    if rules.metadata_only:
        return [False] * len(payloads)
    return rules.compiled.text.clean_payloads(payloads)


def redact_payload_with_report(
    payload: bytes, rules: RedactionRules = DEFAULT_RULES
) -> tuple[bytes, dict[str, int]]:
    """`redact_payload`, and how many values of each kind it replaced (`{}` when none)."""
    counts: Counter[str] = Counter()
    out = _redact(payload, rules, counts)
    return out, dict(counts)


def redact_text(text: str, rules: RedactionRules = DEFAULT_RULES) -> str:
    """A string (a log line, an error message, a command line) redacted as a JSON string value
    would be, JSON inside it included; `text` itself when it has no secret. `metadata_only` does
    not apply to text."""
    return _text(text, rules, Counter())


def redact_text_with_report(
    text: str, rules: RedactionRules = DEFAULT_RULES
) -> tuple[str, dict[str, int]]:
    """`redact_text`, and how many values of each kind it replaced."""
    counts: Counter[str] = Counter()
    out = _text(text, rules, counts)
    return out, dict(counts)


def _text(text: str, rules: RedactionRules, counts: Counter[str]) -> str:
    compiled = rules.compiled
    scope = compiled.text.everything.narrow(text)
    if scope is None:
        return text
    try:
        return _Walker(compiled, counts, scope).string(text, 0)
    except _TooDeep:
        return compiled.text.redact(text, counts, scope)


def _redact(payload: bytes, rules: RedactionRules, counts: Counter[str]) -> bytes:
    if rules.metadata_only:
        if payload != METADATA_ONLY_PAYLOAD:
            counts["payload"] += 1
        return METADATA_ONLY_PAYLOAD
    compiled = rules.compiled
    scope = compiled.text.scan_payload(payload)
    if scope is None:
        return payload
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _as_text(payload, compiled, counts, scope)
    walked: Counter[str] = Counter()
    try:
        new = _Walker(compiled, walked, scope).top(value)
    except _TooDeep:
        return _as_text(payload, compiled, counts, scope)
    if new is value:
        return payload
    if _BIG_INT.search(payload):
        return _as_text(payload, compiled, counts, scope)
    counts.update(walked)
    body = orjson.dumps(new)
    start = len(payload) - len(payload.lstrip())
    end = len(payload.rstrip())
    if start or end < len(payload):
        return payload[:start] + body + payload[end:]
    return body


def _as_text(payload: bytes, compiled: Compiled, counts: Counter[str], scope: Scope) -> bytes:
    text = payload.decode("utf-8", "surrogateescape")
    new = compiled.text.redact(text, counts, scope)
    if new is text:
        return payload
    return new.encode("utf-8", "surrogateescape")


class _Walker:
    """One walk over a parsed message. Every method returns its argument when nothing changed.

    orjson builds exact `dict`, `list` and `str` objects, so types are compared with `is`.
    """

    __slots__ = ("_counts", "_key_cache", "_matcher", "_scope", "_text")

    def __init__(self, compiled: Compiled, counts: Counter[str], scope: Scope) -> None:
        self._matcher = compiled.matcher
        self._text = compiled.text
        self._counts = counts
        self._scope = scope  # what the whole payload may hold
        self._key_cache = compiled.key_cache

    def top(self, value: Any) -> Any:
        if type(value) is dict:
            return self.obj(value, 1, None, envelope=True)
        if type(value) is list:  # a batch: each member is a message
            return self.arr(value, 1, envelope=True)
        return self.value(value, 0, None)

    def value(self, value: Any, depth: int, key: str | None) -> Any:
        kind = type(value)
        if kind is str:
            return self.string(value, depth)
        if kind is dict:
            return self.obj(value, depth + 1, key, envelope=False)
        if kind is list:
            return self.arr(value, depth + 1, envelope=False)
        return value

    def string(self, s: str, depth: int) -> str:
        scope = self._scope.narrow(s)
        if scope is None:
            return s
        if (
            s.lstrip()[:1] in ("{", "[")
            and self._text.needs_structure(scope)
            and not _BIG_INT_S.search(s)
        ):
            try:
                inner = orjson.loads(s)
            except orjson.JSONDecodeError:
                pass
            else:
                if type(inner) is dict or type(inner) is list:
                    new = self.value(inner, depth, None)
                    if new is inner:
                        return s
                    option = orjson.OPT_INDENT_2 if "\n" in s else 0
                    return orjson.dumps(new, option=option).decode()
        return self._text.redact(s, self._counts, scope)

    def arr(self, items: list[Any], depth: int, *, envelope: bool) -> list[Any]:
        if depth > _MAX_DEPTH:
            raise _TooDeep
        out: list[Any] | None = None
        for i, item in enumerate(items):
            if envelope and type(item) is dict:
                new = self.obj(item, depth + 1, None, envelope=True)
            else:
                new = self.value(item, depth, None)
            if new is not item and out is None:
                out = items[:i]
            if out is not None:
                out.append(new)
        return items if out is None else out

    def obj(
        self, obj: dict[str, Any], depth: int, parent: str | None, *, envelope: bool
    ) -> dict[str, Any]:
        if depth > _MAX_DEPTH:
            raise _TooDeep
        named = "value" in obj and self._names_secret(obj)
        out: dict[str, Any] | None = None
        for i, (key, value) in enumerate(obj.items()):
            new_key = key
            new = value
            if not (envelope and key in ENVELOPE_KEYS and type(value) in _SCALARS):
                sensitive = self._key_cache.get(key)
                if sensitive is None:
                    new_key, sensitive = self.key(key)
                if (sensitive or (named and key == "value")) and not (
                    parent == "properties" and _is_schema(value)
                ):
                    if not (type(value) is str and value == _KEY):
                        new = _KEY
                        self._counts["key"] += 1
                else:
                    new = self.value(value, depth, key)
            if out is None and (new is not value or new_key is not key):
                out = dict(list(obj.items())[:i])
            if out is not None:
                if new_key in out:
                    new_key = _unique(new_key, out)
                out[new_key] = new
        return obj if out is None else out

    def key(self, key: str) -> tuple[str, bool]:
        """The key with patterns redacted in it, and whether its value is a secret.

        The redacted key is judged, so that a second pass judges it the same way.
        """
        scope = self._scope.narrow(key)
        new = self._text.redact(key, self._counts, scope) if scope is not None else key
        sensitive = self._matcher(new)
        if new is key:  # remember keys that need no redaction themselves
            if len(self._key_cache) >= _KEY_CACHE_MAX:
                self._key_cache.clear()
            self._key_cache[key] = sensitive
        return new, sensitive

    def _names_secret(self, obj: dict[str, Any]) -> bool:
        """`{"name": "DB_PASSWORD", "value": ...}`: the pair names a secret.

        The name is judged as it will be stored, redacted (counts go to a scratch counter: the
        walk redacts and counts it again in its turn).
        """
        for label in ("name", "key"):
            name = obj.get(label)
            if type(name) is not str:
                continue
            scope = self._scope.narrow(name)
            if scope is not None:
                name = self._text.redact(name, Counter(), scope)
            if self._matcher(name):
                return True
        return False


def _is_schema(value: Any) -> bool:
    return type(value) is dict and value.keys() <= _SCHEMA_WORDS


def _unique(key: str, taken: dict[str, Any]) -> str:
    """Two keys redacted to the same marker keep both values: the second is `<marker>#2`."""
    n = 2
    while f"{key}#{n}" in taken:
        n += 1
    return f"{key}#{n}"
