"""Keeping the API key out of everything but the `Authorization` header (sans-IO).

`Secret` wraps the key so that `repr`, `str` and f-strings show only a masked prefix;
`Scrubber` removes the key (and its URL-encoded and base64 forms) from any text before it is
stored in the spool, logged or shown, in case some library or server echoes it back.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlsplit, urlunsplit

MASK = "…"
SHOWN_PREFIX = 12  # "km_live_" + 4 characters, as the server's key list shows them


def mask(key: str) -> str:
    """`km_live_abcd…`: enough to tell keys apart, never enough to use one."""
    if not key:
        return ""
    shown = SHOWN_PREFIX if len(key) >= 2 * SHOWN_PREFIX else len(key) // 4
    return key[:shown] + MASK


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the `Authorization` header and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Scrubber:
    """Replaces every secret it knows in a text by its masked form."""

    __slots__ = ("_forms",)

    def __init__(self, *secrets: str | None) -> None:
        self._forms: list[tuple[str, str]] = []
        for secret in secrets:
            if secret:
                self.add(secret)

    def add(self, secret: str) -> None:
        masked = mask(secret)
        forms = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
        for form in sorted(forms, key=len, reverse=True):
            if form and (form, masked) not in self._forms:
                self._forms.append((form, masked))

    def __call__(self, text: str) -> str:
        for form, masked in self._forms:
            if form in text:
                text = text.replace(form, masked)
        return text


def display_url(url: str) -> str:
    """The URL without any user or password in it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
