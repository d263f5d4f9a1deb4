"""The redactor: secrets and personal data out of captured MCP messages before they are stored.

Sans-IO and synchronous. `redact_payload` runs where captured messages enter the spool (so secrets
never reach the disk in clear) and again in the API on ingest; `redact_text` serves other fields.

    from km.redact import DEFAULT_RULES, RedactionRules, redact_payload

    clean = redact_payload(b'{"jsonrpc":"2.0","id":1,"params":{"password":"x"}}')
    # b'{"jsonrpc":"2.0","id":1,"params":{"password":"[REDACTED:key]"}}'

    rules = RedactionRules(extra_keys={"pin"}, extra_patterns=[("ticket", r"TCK-[0-9]{6}")])

A replaced value reads `[REDACTED:<kind>]`: `key` for a value under a sensitive key or after a
sensitive `name=` in text, else the pattern's kind (`github_token`, `email`, `card`, ...).
Redaction is idempotent, and a payload with nothing to redact comes back as the same object.
"""

from km.redact.argv import redact_argv
from km.redact.keys import key_words
from km.redact.patterns import BUILTIN_KINDS, marker
from km.redact.payload import (
    ENVELOPE_KEYS,
    METADATA_ONLY_PAYLOAD,
    redact_payload,
    redact_payload_with_report,
    redact_text,
    redact_text_with_report,
    unchanged_payloads,
)
from km.redact.rules import (
    DEFAULT_KEYS,
    DEFAULT_NEUTRAL_WORDS,
    DEFAULT_RULES,
    DEFAULT_SAFE_KEYS,
    RedactionRuleError,
    RedactionRules,
)

__all__ = [
    "BUILTIN_KINDS",
    "DEFAULT_KEYS",
    "DEFAULT_NEUTRAL_WORDS",
    "DEFAULT_RULES",
    "DEFAULT_SAFE_KEYS",
    "ENVELOPE_KEYS",
    "METADATA_ONLY_PAYLOAD",
    "RedactionRuleError",
    "RedactionRules",
    "key_words",
    "marker",
    "redact_argv",
    "redact_payload",
    "redact_payload_with_report",
    "redact_text",
    "redact_text_with_report",
    "unchanged_payloads",
]
