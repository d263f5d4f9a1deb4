"""The one settings object: defaults, then `KM_*` environment variables, then command-line flags.

The CLI builds it; nothing else reads `os.environ`. It is a plain slotted class rather than a
dataclass because it sits on the proxy's start-up path, where every import costs (dataclasses
pulls in `inspect`, ~18 ms here). Expensive resolution (the platformdirs data directory) is
deferred to `resolve_spool_path()`, which the capture thread calls, not the forwarding path.
"""

from __future__ import annotations

from km.errors import UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping  # annotations only: `collections` costs ~1 ms

    from km.insight.cost import Price
    from km.redact import RedactionRules

MIB = 1024 * 1024

# Defaults, each with its reason.
DEFAULT_PAYLOAD_CAP = 64 * 1024  # a stored payload past this is truncated (forwarding never is)
DEFAULT_DEFINITIONS_CAP = 16 * MIB  # initialize and list results (tool definitions) are kept
# whole up to this, whatever the payload cap: drift and poisoning need every definition
DEFAULT_QUEUE_MAX_BYTES = (
    4 * MIB
)  # captures waiting for the capture process (and in it), before drops
DEFAULT_QUEUE_MAX_FRAMES = 4096  # same, by count: many tiny frames cost memory per object
DEFAULT_SPOOL_MAX_BYTES = 1024 * MIB  # the spool evicts its oldest events past this size
DEFAULT_GRACE_S = 2.0  # after closing the server's stdin, before SIGTERM (then SIGKILL)
DEFAULT_DRAIN_S = 2.0  # after the server exits, longest wait for its stdout to reach EOF
DEFAULT_FLUSH_S = 5.0  # longest wait at exit for the spool writer to commit what it holds
DEFAULT_SPOOL_MAX_AGE_S = 30 * 86400.0  # sent events older than this are deleted from the spool
DEFAULT_SYNC_TIMEOUT_S = 50.0  # `km sync` gives up (and says what is left) after this long
MAX_SECONDS = 10 * 365 * 86400.0  # a longer duration is a typo (and overflows time arithmetic)
MAX_SIZE = 1 << 50  # bytes; a larger size is a typo

# Fields whose bad value fails closed: capture is turned off for the session (never unredacted).
REDACTION_FIELDS = frozenset({"redact", "redact_keys"})
# Fields that must be at least 1 (0 would make no sense: a zero payload cap or queue).
_POSITIVE = frozenset({"payload_cap", "queue_max_bytes", "queue_max_frames"})

ENV_PREFIX = "KM_"


def _finite(text: str, scale: float, limit: float) -> float | None:
    """`float(text) * scale` when it is a finite number in [0, limit]; None otherwise."""
    try:
        value = float(text) * scale
    except (ValueError, OverflowError):
        return None
    if value != value or not 0 <= value <= limit:  # NaN, inf, negative, absurd
        return None
    return value


def _parse_size(name: str, text: str) -> int:
    """Parse `1048576`, `64k`, `16M`, `1G` (binary units)."""
    units = {"k": 1024, "m": MIB, "g": 1024 * MIB}
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = 1
    if raw and raw[-1] in units:
        mult = units[raw[-1]]
        raw = raw[:-1]
    value = _finite(raw, mult, MAX_SIZE)
    if value is None:
        raise UsageError(f"{name}: expected a size such as 1048576, 64k or 16M, got {text!r}")
    return int(value)


def _parse_seconds(name: str, text: str) -> float:
    """Parse `2`, `0.5`, or with a unit `30s`, `5m`, `12h`, `30d`."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    raw = text.strip().lower()
    scale = 1.0
    if raw and raw[-1] in units:
        scale = units[raw[-1]]
        raw = raw[:-1]
    value = _finite(raw, scale, MAX_SECONDS)
    if value is None:
        raise UsageError(
            f"{name}: expected a number of seconds (or 30s, 5m, 12h, 30d), got {text!r}"
        )
    return value


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{name}: expected 1/0, true/false, yes/no or on/off, got {text!r}")


class Settings:
    """Everything km can be told. `Settings.load(environ)` applies defaults then `KM_*`
    variables; the CLI then applies flags with `set()`. `load_config_file()` (called off the
    proxy's start-up path: by the capture process and by km's own commands) fills in what
    neither set, from `config.toml` in the user config directory: defaults < config file <
    environment < flags."""

    __slots__ = (
        "_capture",
        "_explicit",
        "_warned",
        "allow_insecure_http",
        "api_key",
        "api_url",
        "ca_bundle",
        "capture_off_reason",
        "config_path",
        "database_url",
        "definitions_cap",
        "drain_s",
        "flush_s",
        "grace_s",
        "model",
        "otlp_endpoint",
        "payload_cap",
        "prices",
        "queue_max_bytes",
        "queue_max_frames",
        "redact",
        "redact_keys",
        "relay",
        "server_name",
        "spool_max_age_s",
        "spool_max_bytes",
        "spool_path",
        "sync_timeout_s",
    )

    # name -> (environment variable, parser); flags use the same parsers.
    def __init__(self) -> None:
        self._explicit: set[str] = set()  # fields set by environment or flag
        self._warned: set[str] = set()  # warnings already printed (each is printed once)
        self._capture = True
        self.capture_off_reason: str | None = None  # a bad redaction setting turned capture off
        self.config_path: str | None = None  # KM_CONFIG; default: user config dir/config.toml
        self.api_url: str | None = None
        self.api_key: str | None = None  # never logged, never in argv (use KM_API_KEY or km login)
        self.database_url: str | None = None  # km serve: postgresql://...; default embedded SQLite
        self.redact = "on"  # on | metadata (store no payloads at all) ; never off
        self.redact_keys: tuple[str, ...] = ()  # extra sensitive key names, comma-separated
        self.server_name: str | None = None
        self.spool_path: str | None = None
        self.ca_bundle: str | None = None  # PEM file of CAs the uplink trusts (default: system's)
        self.allow_insecure_http = False  # send the API key over http:// to a non-loopback host
        self.relay = "auto"  # auto | threads (the portable relay, as on Windows)
        self.payload_cap = DEFAULT_PAYLOAD_CAP
        self.definitions_cap = DEFAULT_DEFINITIONS_CAP
        self.queue_max_bytes = DEFAULT_QUEUE_MAX_BYTES
        self.queue_max_frames = DEFAULT_QUEUE_MAX_FRAMES
        self.spool_max_bytes = DEFAULT_SPOOL_MAX_BYTES
        self.grace_s = DEFAULT_GRACE_S
        self.drain_s = DEFAULT_DRAIN_S
        self.flush_s = DEFAULT_FLUSH_S
        self.spool_max_age_s = DEFAULT_SPOOL_MAX_AGE_S
        self.sync_timeout_s = DEFAULT_SYNC_TIMEOUT_S
        self.otlp_endpoint: str | None = None  # live OTLP/HTTP traces (km.export.live)
        self.model: str | None = None  # for token costs; None: km.insight.cost.DEFAULT_MODEL
        self.prices: dict[str, Price] = {}  # config file `[prices]`: over the built-in table

    @property
    def capture(self) -> bool:
        """Whether to capture: off by `--no-capture`/`KM_CAPTURE=0`, or by a redaction
        setting that could not be understood (fail closed: never capture unredacted)."""
        return self._capture and self.capture_off_reason is None

    @capture.setter
    def capture(self, value: bool) -> None:
        self._capture = value

    def warn(self, message: str) -> None:
        """One `km: ...` line on stderr, once per message however often it recurs."""
        if message in self._warned:
            return
        self._warned.add(message)
        import os

        try:
            os.write(2, f"km: {message}\n".encode("utf-8", "replace"))
        except OSError:
            pass

    def apply(self, field: str, text: str, source: str) -> None:
        """`set`, except that a bad value never stops km: it is warned about once and
        ignored (the default, or a lower-precedence source, stays); a bad redaction setting
        turns capture off for the session instead (forwarding goes on)."""
        try:
            self.set(field, text, source)
        except UsageError as exc:
            self._explicit.discard(field)
            if field in REDACTION_FIELDS:
                self.capture_off_reason = str(exc)
                self.warn(f"{exc}; capture is off for this session (nothing is stored "
                          "unredacted), forwarding goes on")  # fmt: skip
            else:
                self.warn(f"{exc}; ignored, using {_shown_default(field)}")

    def set(self, field: str, text: str, source: str) -> None:
        """Set one field from its textual form; `source` names it in error messages."""
        self._explicit.add(field)
        if field in (
            "server_name",
            "spool_path",
            "api_url",
            "api_key",
            "database_url",
            "config_path",
            "ca_bundle",
            "model",
            "otlp_endpoint",
        ):
            setattr(self, field, text or None)
        elif field == "redact":
            mode = text.strip().lower()
            if mode not in ("on", "metadata"):
                raise UsageError(f"{source}: expected `on` or `metadata`, got {text!r}")
            self.redact = mode
        elif field == "relay":
            relay = text.strip().lower()
            if relay not in ("auto", "threads"):
                raise UsageError(f"{source}: expected `auto` or `threads`, got {text!r}")
            self.relay = relay
        elif field == "redact_keys":
            keys = tuple(k.strip() for k in text.split(",") if k.strip())
            for key in keys:  # the redactor's own rule (km.redact.rules), checked cheaply here
                if not any(c.isalnum() for c in key):
                    raise UsageError(f"{source}: key term {key!r} needs a letter or digit")
            self.redact_keys = keys
        elif field == "capture":
            self.capture = _parse_bool(source, text)
        elif field == "allow_insecure_http":
            self.allow_insecure_http = _parse_bool(source, text)
        elif field in (
            "payload_cap",
            "definitions_cap",
            "queue_max_bytes",
            "queue_max_frames",
            "spool_max_bytes",
        ):
            size = _parse_size(source, text)
            if size < 1 and field in _POSITIVE:
                raise UsageError(f"{source}: must be at least 1, got {text!r}")
            setattr(self, field, size)
        elif field in ("grace_s", "drain_s", "flush_s", "spool_max_age_s", "sync_timeout_s"):
            seconds = _parse_seconds(source, text)
            if seconds <= 0 and field in ("spool_max_age_s", "sync_timeout_s"):
                raise UsageError(f"{source}: must be more than 0, got {text!r}")
            setattr(self, field, seconds)
        else:
            raise UsageError(f"unknown setting {field!r}")

    @classmethod
    def load(cls, environ: Mapping[str, str]) -> Settings:
        """Defaults overridden by `KM_*` environment variables."""
        settings = cls()
        for field, var in ENV_VARS.items():
            value = environ.get(var)
            if value is not None:
                settings.apply(field, value, var)
        return settings

    def redaction_rules(self) -> RedactionRules:
        """The redactor's rules for these settings (km.redact is imported here, off the
        proxy's start-up path)."""
        from km.redact import DEFAULT_RULES, RedactionRules

        if self.redact == "on" and not self.redact_keys:
            return DEFAULT_RULES
        return RedactionRules(
            extra_keys=frozenset(self.redact_keys), metadata_only=self.redact == "metadata"
        )

    def resolve_config_path(self) -> str:
        if self.config_path:
            return self.config_path
        import os

        import platformdirs

        return os.path.join(platformdirs.user_config_dir("km", appauthor=False), "config.toml")

    def load_config_file(self, *, strict: bool = False) -> None:
        """Fill fields not set by environment or flags from the TOML config file, if any.
        Keys are the environment variables' names without `KM_`, lower case (`api_url`).

        The file is opened without following a symlink and must be the user's own; one that
        others can read is made private (it holds the API key). A file that cannot be used, an
        unknown key or a bad value is warned about once and ignored (a bad redaction setting
        turns capture off); with `strict` (km doctor) the first problem raises `UsageError`.
        """
        import tomllib

        from km.private import PrivateFileError, read_private

        path = self.resolve_config_path()
        try:
            raw, note = read_private(path)
            data = tomllib.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, PrivateFileError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            if isinstance(exc, PrivateFileError):  # names the path itself
                problem = f"config file {exc}"
            elif isinstance(exc, OSError):
                problem = (
                    f"config file {path}: cannot read it ({exc.strerror or exc}): fix its "
                    "permissions, or set KM_CONFIG to another file"
                )
            else:
                problem = f"config file {path}: not valid TOML ({exc}): fix or remove it"
            if strict:
                raise UsageError(problem) from None
            self.warn(f"{problem}; ignored, going on with environment and defaults")
            return
        if note:
            self.warn(note)
        by_key = {var.removeprefix(ENV_PREFIX).lower(): field for field, var in ENV_VARS.items()}
        for key, value in data.items():
            if key == "prices":  # a table: model = [input_per_m, output_per_m]
                from km.insight.cost import PriceError, parse_prices

                try:
                    self.prices = parse_prices(value, f"config file {path}: [prices]")
                except PriceError as exc:
                    if strict:
                        raise
                    self.warn(f"{exc}; ignored, using the built-in prices")
                continue
            field = by_key.get(key)
            if field is None:
                problem = (
                    f"config file {path}: unknown key {key!r} (known: {', '.join(sorted(by_key))})"
                )
                if strict:
                    raise UsageError(problem)
                self.warn(f"{problem}; ignored")
                continue
            if field not in self._explicit:
                explicit = set(self._explicit)
                text = str(value).lower() if isinstance(value, bool) else str(value)
                if strict:
                    self.set(field, text, f"{path}: {key}")
                else:
                    self.apply(field, text, f"{path}: {key}")
                self._explicit = explicit

    def resolve_spool_path(self) -> str:
        """The spool file: `--spool`/`KM_SPOOL`, else `spool.db` in the user data directory."""
        if self.spool_path:
            return self.spool_path
        return default_spool_path()


ENV_VARS = {
    "config_path": "KM_CONFIG",
    "api_url": "KM_API_URL",
    "api_key": "KM_API_KEY",
    "database_url": "KM_DATABASE_URL",
    "server_name": "KM_NAME",
    "spool_path": "KM_SPOOL",
    "redact": "KM_REDACT",
    "redact_keys": "KM_REDACT_KEYS",
    "capture": "KM_CAPTURE",
    "relay": "KM_RELAY",
    "payload_cap": "KM_MAX_PAYLOAD",
    "definitions_cap": "KM_MAX_DEFINITIONS",
    "queue_max_bytes": "KM_QUEUE_MAX_BYTES",
    "queue_max_frames": "KM_QUEUE_MAX_FRAMES",
    "spool_max_bytes": "KM_SPOOL_MAX_BYTES",
    "grace_s": "KM_GRACE",
    "drain_s": "KM_DRAIN",
    "flush_s": "KM_FLUSH",
    "spool_max_age_s": "KM_SPOOL_MAX_AGE",
    "sync_timeout_s": "KM_SYNC_TIMEOUT",
    "ca_bundle": "KM_CA_BUNDLE",
    "allow_insecure_http": "KM_ALLOW_INSECURE_HTTP",
    "model": "KM_MODEL",
    "otlp_endpoint": "KM_OTLP_ENDPOINT",
}


def _shown_default(field: str) -> str:
    value = getattr(Settings(), field)
    return "the default" if value in (None, ()) else f"the default {value!r}"


def default_spool_path() -> str:
    """`spool.db` in the platformdirs user data directory (imported here, off the hot path)."""
    import os

    import platformdirs

    return os.path.join(platformdirs.user_data_dir("km", appauthor=False), "spool.db")
