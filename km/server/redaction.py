"""The server applies the shared redactor (`km.redact.redact_payload`) to every payload again
before storing it. It is looked up once, when the app is built; until that function exists the
server stores payloads as the client (which redacts too) sent them, and says so in its log."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence

Redactor = Callable[[bytes], bytes]
# For each payload of a batch, whether the redactor would return it unchanged (one pre-scan for
# them all): `km.redact.unchanged_payloads`.
CleanCheck = Callable[[Sequence[bytes]], list[bool]]

log = logging.getLogger("km.server")


def load_redactor() -> Redactor | None:
    """`km.redact.redact_payload`, or None while it does not exist. A redact module that
    exists but fails to import (a missing dependency, a syntax error) is an error, never a
    silent skip."""
    try:
        module = importlib.import_module("km.redact")
    except ModuleNotFoundError as exc:
        if exc.name != "km.redact":
            raise
        module = None
    redactor: Redactor | None = getattr(module, "redact_payload", None)
    if redactor is None:
        log.warning("km.redact.redact_payload not found: payloads are stored as clients sent them")
    return redactor


def load_clean_check() -> CleanCheck | None:
    """`km.redact.unchanged_payloads`, the redactor's batch pre-scan, or None where the
    redactor has none (then every payload is redacted one by one)."""
    try:
        module = importlib.import_module("km.redact")
    except ModuleNotFoundError as exc:
        if exc.name != "km.redact":
            raise
        return None
    check: CleanCheck | None = getattr(module, "unchanged_payloads", None)
    return check
