"""The one settings object: defaults, then `KM_*` environment variables, then command-line flags.

The CLI builds it; nothing else reads `os.environ`. It is a plain slotted class rather than a
dataclass because it sits on the proxy's start-up path, where every import costs (dataclasses
pulls in `inspect`, ~18 ms here). Expensive resolution (the platformdirs data directory) is
deferred to `resolve_spool_path()`, which the capture thread calls, not the forwarding path.
"""

from __future__ import annotations

from collections.abc import Mapping

from km.errors import UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing costs start-up time
if TYPE_CHECKING:
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

ENV_PREFIX = "KM_"


def _parse_size(name: str, text: str) -> int:
    """Parse `1048576`, `64k`, `16M`, `1G` (binary units)."""
    units = {"k": 1024, "m": MIB, "g": 1024 * MIB}
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = 1
    if raw and raw[-1] in units:
        mult = units[raw[-1]]
        raw = raw[:-1]
    try:
        value = int(float(raw) * mult)
    except ValueError:
        raise UsageError(
            f"{name}: expected a size such as 1048576, 64k or 16M, got {text!r}"
        ) from None
    if value < 0:
        raise UsageError(f"{name}: must not be negative, got {text!r}")
    return value


def _parse_seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}: expected a number of seconds, got {text!r}") from None
    if value < 0:
        raise UsageError(f"{name}: must not be negative, got {text!r}")
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
        "_explicit",
        "api_key",
        "api_url",
        "capture",
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
        "spool_max_bytes",
        "spool_path",
    )

    # name -> (environment variable, parser); flags use the same parsers.
    def __init__(self) -> None:
        self._explicit: set[str] = set()  # fields set by environment or flag
        self.config_path: str | None = None  # KM_CONFIG; default: user config dir/config.toml
        self.api_url: str | None = None
        self.api_key: str | None = None  # never logged, never in argv (use KM_API_KEY or km login)
        self.database_url: str | None = None  # km serve: postgresql://...; default embedded SQLite
        self.redact = "on"  # on | metadata (store no payloads at all) ; never off
        self.redact_keys: tuple[str, ...] = ()  # extra sensitive key names, comma-separated
        self.server_name: str | None = None
        self.spool_path: str | None = None
        self.capture = True
        self.relay = "auto"  # auto | threads (the portable relay, as on Windows)
        self.payload_cap = DEFAULT_PAYLOAD_CAP
        self.definitions_cap = DEFAULT_DEFINITIONS_CAP
        self.queue_max_bytes = DEFAULT_QUEUE_MAX_BYTES
        self.queue_max_frames = DEFAULT_QUEUE_MAX_FRAMES
        self.spool_max_bytes = DEFAULT_SPOOL_MAX_BYTES
        self.grace_s = DEFAULT_GRACE_S
        self.drain_s = DEFAULT_DRAIN_S
        self.flush_s = DEFAULT_FLUSH_S
        self.otlp_endpoint: str | None = None  # live OTLP/HTTP traces (km.export.live)
        self.model: str | None = None  # for token costs; None: km.insight.cost.DEFAULT_MODEL
        self.prices: dict[str, Price] = {}  # config file `[prices]`: over the built-in table

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
            self.redact_keys = tuple(k.strip() for k in text.split(",") if k.strip())
        elif field == "capture":
            self.capture = _parse_bool(source, text)
        elif field in (
            "payload_cap",
            "definitions_cap",
            "queue_max_bytes",
            "queue_max_frames",
            "spool_max_bytes",
        ):
            setattr(self, field, _parse_size(source, text))
        elif field in ("grace_s", "drain_s", "flush_s"):
            setattr(self, field, _parse_seconds(source, text))
        else:
            raise UsageError(f"unknown setting {field!r}")

    @classmethod
    def load(cls, environ: Mapping[str, str]) -> Settings:
        """Defaults overridden by `KM_*` environment variables."""
        settings = cls()
        for field, var in ENV_VARS.items():
            value = environ.get(var)
            if value is not None:
                settings.set(field, value, var)
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

    def load_config_file(self) -> None:
        """Fill fields not set by environment or flags from the TOML config file, if any.
        Keys are the environment variables' names without `KM_`, lower case (`api_url`)."""
        import tomllib

        path = self.resolve_config_path()
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UsageError(
                f"config file {path}: cannot read it ({exc.strerror or exc}): fix its "
                "permissions, or set KM_CONFIG to another file"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(
                f"config file {path}: not valid TOML ({exc}): fix or remove it"
            ) from None
        by_key = {var.removeprefix(ENV_PREFIX).lower(): field for field, var in ENV_VARS.items()}
        for key, value in data.items():
            if key == "prices":  # a table: model = [input_per_m, output_per_m]
                from km.insight.cost import parse_prices

                self.prices = parse_prices(value, f"config file {path}: [prices]")
                continue
            field = by_key.get(key)
            if field is None:
                raise UsageError(
                    f"config file {path}: unknown key {key!r} (known: {', '.join(sorted(by_key))})"
                )
            if field not in self._explicit:
                explicit = set(self._explicit)
                self.set(
                    field,
                    str(value).lower() if isinstance(value, bool) else str(value),
                    f"{path}: {key}",
                )
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
    "model": "KM_MODEL",
    "otlp_endpoint": "KM_OTLP_ENDPOINT",
}


def default_spool_path() -> str:
    """`spool.db` in the platformdirs user data directory (imported here, off the hot path)."""
    import os

    import platformdirs

    return os.path.join(platformdirs.user_data_dir("km", appauthor=False), "spool.db")
