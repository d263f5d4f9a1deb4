"""TLS for `km serve --tls-cert FILE --tls-key FILE`: TLS 1.2 or newer, Python's server
defaults otherwise (no compression, server cipher preference, forward-secret suites)."""

from __future__ import annotations

import ssl

from km.errors import UsageError

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


def server_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The context to serve with, None without TLS; a one-line `UsageError` when the pair is
    incomplete or cannot be loaded."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--tls-cert and --tls-key go together: give both files, or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise UsageError(f"--tls-cert/--tls-key: {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise UsageError(
            f"--tls-cert/--tls-key: cannot load {cert} with {key} ({reason}): "
            "expected a PEM certificate (chain) and its PEM private key"
        ) from None
    return context
