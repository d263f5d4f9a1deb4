"""API keys (sans-IO apart from the random source): `km_live_` + 32 url-safe characters.

The server stores only `hash_key(key)` (SHA-256, hex) and a 12-character display prefix; a key
is shown once, when created.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "km_live_"
DISPLAY_PREFIX_LEN = 12  # "km_live_" + 4 characters: enough to tell keys apart in a list
TOKEN_BYTES = 24  # token_urlsafe(24) gives 32 characters


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LEN]


def parse_bearer(header: str | None) -> str | None:
    """The key from an `Authorization: Bearer <key>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
