"""Typed errors of the uplink. Library code raises them; only the CLI turns one into an exit code.
No message ever contains the API key (see `km.uplink.secret`)."""

from __future__ import annotations

from km.errors import KmError


class UplinkError(KmError):
    """Delivery to the Kilometers API cannot go on now."""


class NotConfigured(UplinkError):
    """No API URL or no API key: there is nowhere to deliver to."""

    exit_code = 2

    def __init__(self, missing: str) -> None:
        super().__init__(
            f"no API {missing} configured: run `km login --url https://...` "
            "(or set KM_API_URL and KM_API_KEY)"
        )
        self.missing = missing


class KeyRejected(UplinkError):
    """The API answered 401 or 403: the key is unknown or revoked. Delivery is paused."""

    exit_code = 3

    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(
            f"the API at {url} rejected the key ({reason}); run `km login` with a valid key"
        )
        self.url = url
        self.status = status
        self.reason = reason


class ApiUnavailable(UplinkError):
    """The API kept failing (unreachable, 5xx, rate limited for too long): try again later."""

    exit_code = 4

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot deliver to {url}: {reason}; events stay in the spool")
        self.url = url
        self.reason = reason


class SyncTimedOut(UplinkError):
    """`km sync` reached its deadline: what was not acknowledged stays in the spool."""

    exit_code = 5

    def __init__(
        self, url: str, timeout_s: float, sent: int, waiting: int, last_error: str | None
    ) -> None:
        why = f"last error: {last_error}" if last_error else "no answer in time"
        super().__init__(
            f"gave up after {timeout_s:g} s (--timeout) delivering to {url} ({why}); "
            f"{sent} events sent, {waiting} still wait in the spool: run km sync again"
        )
        self.url = url
        self.timeout_s = timeout_s
        self.sent = sent
        self.waiting = waiting


class InsecureTransport(UplinkError):
    """The API URL is plain http:// to a host that is not this machine: the key would cross
    the network in clear."""

    exit_code = 2

    def __init__(self, url: str, host: str) -> None:
        super().__init__(
            f"refusing to send the API key to {url} over plain http ({host} is not this "
            "machine): use https://, or set KM_ALLOW_INSECURE_HTTP=1 to allow it"
        )
        self.url = url
        self.host = host


class ConfigWriteError(KmError):
    """The config file cannot be written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot write config file {path}: {reason}")
        self.path = path
        self.reason = reason
