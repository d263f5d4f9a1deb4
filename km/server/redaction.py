"""The server applies the shared redactor (`km.redact.redact_payload`) to every payload again
before storing it. It is looked up once, when the app is built; until that module exists the
server stores payloads as the client (which redacts too) sent them."""

from __future__ import annotations

import importlib
from collections.abc import Callable

Redactor = Callable[[bytes], bytes]


def load_redactor() -> Redactor | None:
    """`km.redact.redact_payload`, or None when the module is not there. A redact module that
    exists but fails to import is an error, never a silent skip."""
    try:
        module = importlib.import_module("km.redact")
    except ModuleNotFoundError as exc:
        if exc.name == "km.redact":
            return None
        raise
    redactor: Redactor = module.redact_payload
    return redactor
