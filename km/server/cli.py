"""`km serve ...`: the server and its operator commands, parsed with argparse.

    km serve [--host H] [--port P] [--database-url URL] [--tls-cert F --tls-key F] [limits]
    km serve keys create --account NAME [--label L]    prints the new key, once, on stdout
    km serve keys list [--json]
    km serve keys revoke KEY_ID
    km serve accounts list [--json]
    km serve audit [--account NAME] [--limit N] [--json]
    km serve retention show [--json] | set --account NAME DAYS

The store is `--database-url`, else `KM_DATABASE_URL` (or `database_url` in the config file),
else the SQLite file `server.db` in the user data directory. Only the new key goes to stdout;
everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import orjson

from km.arguments import CommandParser, ParserExit
from km.errors import UsageError
from km.server import keys as keygen
from km.server.audit import AuditEntry, entry_json
from km.server.config import (
    DEFAULT_BURST,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_EVENTS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORT,
    DEFAULT_RATE,
    ServerConfig,
)
from km.server.errors import NotFound
from km.server.ratelimit import RateLimit
from km.server.retention import MAX_DAYS, MIN_DAYS
from km.server.stores import describe_dsn, open_store, sqlite_path
from km.server.stores.base import Account, EventStore
from km.server.tls import server_context
from km.settings import Settings

ADMIN_WORDS = ("keys", "accounts", "audit", "retention")
MAX_AUDIT_ROWS = 100_000


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="postgresql://... or sqlite:///path "
        "(KM_DATABASE_URL; default: user data dir/server.db)",
    )


def _serve_parser() -> CommandParser:
    p = CommandParser(prog="km serve", description="Run the Kilometers API.")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on ({DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT}; 0: any)")
    _add_database(p)
    p.add_argument(
        "--max-batch-bytes",
        metavar="SIZE",
        default=str(DEFAULT_MAX_BATCH_BYTES),
        help="largest request body after decompression (8M)",
    )
    p.add_argument(
        "--max-batch-events",
        type=int,
        default=DEFAULT_MAX_BATCH_EVENTS,
        help=f"most events per request ({DEFAULT_MAX_BATCH_EVENTS})",
    )
    p.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help=f"requests/s per key ({DEFAULT_RATE:g})"
    )
    p.add_argument(
        "--burst", type=float, default=DEFAULT_BURST, help=f"burst per key ({DEFAULT_BURST:g})"
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="share --port with other `km serve --reuse-port` processes (SO_REUSEPORT; Linux "
        "spreads connections over them): run one per core",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS: PEM certificate (chain)")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key")
    p.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"open connections at most ({DEFAULT_MAX_CONNECTIONS}; always below the "
        "open-file limit)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT_S,
        metavar="SECONDS",
        help=f"a request's headers must arrive within this ({DEFAULT_HEADER_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"close a kept-alive connection idle this long ({DEFAULT_IDLE_TIMEOUT_S:g})",
    )
    return p


def _admin_parser() -> CommandParser:
    p = CommandParser(prog="km serve", description="Manage the Kilometers API's accounts and keys.")
    words = p.add_subparsers(dest="noun", required=True)
    keys = words.add_parser("keys", help="API keys").add_subparsers(dest="verb", required=True)
    create = keys.add_parser("create", help="create a key (printed once, on stdout)")
    create.add_argument("--account", required=True, help="account name (created if needed)")
    create.add_argument("--label", help="a note to tell keys apart")
    _add_database(create)
    listing = keys.add_parser("list", help="list keys (prefixes only)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    _add_database(listing)
    revoke = keys.add_parser("revoke", help="revoke a key: its requests get 403 from now on")
    revoke.add_argument("key_id", type=int, metavar="KEY_ID", help="id from `km serve keys list`")
    _add_database(revoke)
    accounts = words.add_parser("accounts", help="accounts").add_subparsers(
        dest="verb", required=True
    )
    accounts_list = accounts.add_parser("list", help="list accounts")
    accounts_list.add_argument("--json", action="store_true", help="print JSON")
    _add_database(accounts_list)
    audit = words.add_parser("audit", help="the audit log, newest first")
    audit.add_argument("--account", help="only this account's rows (default: every row)")
    audit.add_argument("--limit", type=int, default=100, help="rows at most (100)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    _add_database(audit)
    retention = words.add_parser("retention", help="how long accounts keep their data")
    verbs = retention.add_subparsers(dest="verb", required=True)
    show = verbs.add_parser("show", help="every account's retention")
    show.add_argument("--json", action="store_true", help="print JSON")
    _add_database(show)
    set_days = verbs.add_parser("set", help=f"set an account's retention ({MIN_DAYS}-{MAX_DAYS})")
    set_days.add_argument("--account", required=True, help="account name")
    set_days.add_argument("days", type=int, metavar="DAYS", help="days to keep events")
    _add_database(set_days)
    return p


def resolve_database_url(flag: str | None, settings: Settings) -> str:
    if flag:
        settings.set("database_url", flag, "--database-url")
    if settings.database_url:
        return settings.database_url
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("km", appauthor=False), "server.db")


def describe_store(url: str) -> str:
    path = sqlite_path(url)
    return f"sqlite:{path}" if path is not None else describe_dsn(url)


def run_serve(args: list[str], settings: Settings) -> int:
    """`km serve ...` with the words after `serve`; returns the exit code."""
    try:
        settings.load_config_file()
        if args and args[0] in ADMIN_WORDS:
            options = _admin_parser().parse_args(args)
            _log_to_stderr(logging.WARNING)
            url = resolve_database_url(options.database_url, settings)
            return asyncio.run(_with_store(url, lambda store: _admin(store, options)))
        options = _serve_parser().parse_args(args)
        config = _server_config(options)
        server_context(config.tls_cert, config.tls_key)  # a bad pair: one line, before serving
        url = resolve_database_url(options.database_url, settings)
    except ParserExit as done:
        return done.status
    _log_to_stderr()
    from km.server.serve import run, serve

    try:
        run(serve(config, url, describe_store(url)))
    except KeyboardInterrupt:
        return 130
    return 0


def _server_config(options: argparse.Namespace) -> ServerConfig:
    if not 0 <= options.port <= 65535:
        raise UsageError(f"--port: expected 0-65535, got {options.port}")
    if options.reuse_port and options.port == 0:
        raise UsageError("--reuse-port: give the shared --port (0 picks a different one each time)")
    if options.max_batch_events < 1:
        raise UsageError("--max-batch-events: must be at least 1")
    try:
        rate_limit = RateLimit(options.rate, options.burst)
    except ValueError:
        raise UsageError("--rate must be > 0 and --burst >= 1") from None
    if options.max_connections < 1:
        raise UsageError("--max-connections: must be at least 1")
    for flag, value in (("--header-timeout", options.header_timeout),
                        ("--idle-timeout", options.idle_timeout)):  # fmt: skip
        if not 0 < value < 86400:
            raise UsageError(f"{flag}: expected seconds between 0 and 86400, got {value:g}")
    return ServerConfig(
        host=options.host,
        port=options.port,
        max_batch_bytes=parse_size("--max-batch-bytes", options.max_batch_bytes),
        max_batch_events=options.max_batch_events,
        rate_limit=rate_limit,
        max_connections=options.max_connections,
        header_timeout_s=options.header_timeout,
        idle_timeout_s=options.idle_timeout,
        tls_cert=options.tls_cert,
        tls_key=options.tls_key,
        reuse_port=options.reuse_port,
    )


def parse_size(name: str, text: str) -> int:
    """`8388608`, `512k`, `8M` (binary units), at least 1."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = units.get(raw[-1:], 1)
    try:
        value = int(float(raw[:-1] if mult > 1 else raw) * mult)
    except ValueError:
        raise UsageError(
            f"{name}: expected a size such as 8388608, 512k or 8M, got {text!r}"
        ) from None
    if value < 1:
        raise UsageError(f"{name}: must be at least 1 byte, got {text!r}")
    return value


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is when a record is emitted."""

    km_serve = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def _log_to_stderr(level: int = logging.INFO) -> None:
    log = logging.getLogger("km.server")
    if not any(getattr(h, "km_serve", False) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("km serve: %(message)s"))
        log.addHandler(handler)
    log.setLevel(level)


async def _with_store(url: str, action: Callable[[EventStore], Awaitable[int]]) -> int:
    store = await open_store(url)
    try:
        await store.migrate()
        return await action(store)
    finally:
        await store.close()


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _err(message: str) -> None:
    sys.stderr.write(f"km serve: {message}\n")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


async def _admin(store: EventStore, options: argparse.Namespace) -> int:
    if options.noun == "audit":
        return await _audit(store, options)
    if options.noun == "retention":
        return await _retention(store, options)
    if options.noun == "accounts":
        accounts = await store.list_accounts()
        if options.json:
            sys.stdout.write(
                orjson.dumps(
                    [
                        {
                            "id": a.id,
                            "name": a.name,
                            "created_ns": a.created_ns,
                            "retention_days": a.retention_days,
                        }
                        for a in accounts
                    ]
                ).decode()
                + "\n"
            )
        else:
            account_rows = [(str(a.id), a.name, _when(a.created_ns)) for a in accounts]
            sys.stdout.write(_table(("ID", "NAME", "CREATED"), account_rows))
        return 0
    if options.verb == "create":
        account = await store.create_account(options.account)
        key = keygen.generate_key()
        record = await store.create_key(
            account.id, keygen.hash_key(key), keygen.display_prefix(key), options.label
        )
        sys.stdout.write(key + "\n")
        sys.stdout.flush()
        _err(
            f"created key {record.id} ({record.prefix}...) for account {account.name!r}. "
            "It is shown only this once: store it now (the uplink reads KM_API_KEY)."
        )
        return 0
    if options.verb == "list":
        keys = await store.list_keys()
        if options.json:
            doc = [
                {
                    "id": k.id,
                    "account": k.account_name,
                    "account_id": k.account_id,
                    "prefix": k.prefix,
                    "label": k.label,
                    "created_ns": k.created_ns,
                    "revoked_ns": k.revoked_ns,
                }
                for k in keys
            ]
            sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        else:
            rows = [
                (
                    str(k.id),
                    k.account_name,
                    k.prefix + "...",
                    k.label or "",
                    _when(k.created_ns),
                    _when(k.revoked_ns),
                )
                for k in keys
            ]
            sys.stdout.write(
                _table(("ID", "ACCOUNT", "PREFIX", "LABEL", "CREATED", "REVOKED"), rows)
            )
        return 0
    if options.verb == "revoke":
        before = {k.id: k for k in await store.list_keys()}.get(options.key_id)
        revoked = await store.revoke_key(options.key_id)
        if revoked is None:
            raise NotFound("key", options.key_id)
        already = before is not None and before.revoked
        state = "was already revoked" if already else "revoked"
        _err(f"key {revoked.id} ({revoked.prefix}...) of account {revoked.account_name!r} {state}")
        return 0
    raise UsageError(f"km serve {options.noun}: unknown command {options.verb!r}")


async def _account_named(store: EventStore, name: str) -> Account:
    for account in await store.list_accounts():
        if account.name == name:
            return account
    raise NotFound("account", name)


async def _audit(store: EventStore, options: argparse.Namespace) -> int:
    if not 1 <= options.limit <= MAX_AUDIT_ROWS:
        raise UsageError(f"--limit: expected 1-{MAX_AUDIT_ROWS}, got {options.limit}")
    accounts = {a.id: a.name for a in await store.list_accounts()}
    account_id = None
    if options.account is not None:
        account_id = (await _account_named(store, options.account)).id
    entries: list[AuditEntry] = []
    cursor = None
    while len(entries) < options.limit:
        page = await store.list_audit(account_id, cursor, min(1000, options.limit - len(entries)))
        entries += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    if options.json:
        doc = [
            {**entry_json(e), "account": accounts.get(e.account_id) if e.account_id else None}
            for e in entries
        ]
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        return 0
    rows = [
        (
            _when(e.ts_ns),
            accounts.get(e.account_id, "-") if e.account_id else "-",
            e.action,
            e.actor,
            e.target or "",
            str(e.count),
            orjson.dumps(e.detail).decode() if e.detail else "",
        )
        for e in entries
    ]
    header = ("WHEN", "ACCOUNT", "ACTION", "ACTOR", "TARGET", "COUNT", "DETAIL")
    sys.stdout.write(_table(header, rows))
    return 0


async def _retention(store: EventStore, options: argparse.Namespace) -> int:
    if options.verb == "set":
        if not MIN_DAYS <= options.days <= MAX_DAYS:
            raise UsageError(f"DAYS: expected {MIN_DAYS}-{MAX_DAYS}, got {options.days}")
        account = await _account_named(store, options.account)
        changed = await store.set_retention(account.id, options.days)
        if changed is None:
            raise NotFound("account", options.account)
        before, after = changed
        what = "unchanged" if before == after else f"changed from {before} days"
        _err(f"account {account.name!r} keeps its events {after} days ({what})")
        return 0
    accounts = await store.list_accounts()
    if options.json:
        doc = [{"account": a.name, "retention_days": a.retention_days} for a in accounts]
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        rows = [(a.name, str(a.retention_days)) for a in accounts]
        sys.stdout.write(_table(("ACCOUNT", "DAYS"), rows))
    return 0
