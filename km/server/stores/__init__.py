"""Event stores, chosen by database URL: `postgresql://...` (or `postgres://`) for PostgreSQL
through asyncpg, `sqlite:///path/to/file.db` or a plain file path for the embedded store."""

from __future__ import annotations

from urllib.parse import urlsplit

from km.errors import UsageError
from km.server.stores.base import EventStore

PG_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path(url: str) -> str | None:
    """The file an SQLite URL or plain path names; None for a PostgreSQL URL."""
    if url.startswith(PG_SCHEMES):
        return None
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path:
            raise UsageError(f"database URL {url!r}: expected sqlite:///path/to/file.db")
        return path
    if "://" in url:
        raise UsageError(
            f"database URL {url.split('://')[0]}://...: expected postgresql://..., "
            "sqlite:///path or a file path"
        )
    return url


def describe_dsn(dsn: str) -> str:
    """host:port/database of a PostgreSQL URL, for messages (never the password)."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path}"


async def open_store(url: str) -> EventStore:
    """Open (not yet migrated) the store a database URL names."""
    path = sqlite_path(url)
    if path is None:
        from km.server.stores.postgres import PostgresStore

        return await PostgresStore.open(url)
    from km.server.stores.sqlite import SqliteStore

    return await SqliteStore.open(path)
