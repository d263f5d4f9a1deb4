"""Data retention (sans-IO): how long each account's events are kept, and the daily time
partitions PostgreSQL keeps them in.

An account keeps its events, sessions and hourly rollups for `retention_days` (1-365, default
30) counted on the event's own time (`ts_ns`). The server enforces it in the background:
PostgreSQL drops whole daily partitions once every account is past them, and deletes in bounded
batches only where accounts with a shorter retention share a partition with longer ones;
SQLite deletes in bounded batches, one short write transaction each.
"""

from __future__ import annotations

from datetime import UTC, datetime

from km.server.errors import BadRequest

DEFAULT_DAYS = 30
MIN_DAYS = 1
MAX_DAYS = 365
DAY_NS = 86_400 * 1_000_000_000
PURGE_BATCH = 5000  # rows deleted per transaction: each holds its locks for milliseconds
PURGE_INTERVAL_S = 600.0  # how often the server enforces retention (and makes partitions)
PARTITIONS_AHEAD = 7  # daily partitions made ahead of today
PARTITION_PREFIX = "events_p"  # events_p20261206: the UTC day it holds


def check_days(days: int) -> int:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise BadRequest(f"retention: expected {MIN_DAYS} to {MAX_DAYS} days, got {days}")
    return days


def cutoff_ns(now_ns: int, days: int) -> int:
    """Events before this are past a `days` retention: the start of the UTC day `days` days
    before today's. Whole days go at once (so PostgreSQL can drop a day's partition rather
    than delete its rows): an event is kept at least `days` days, at most one day more."""
    return (day_of(now_ns) - days) * DAY_NS


def day_of(ts_ns: int) -> int:
    """Days since 1970-01-01 (UTC)."""
    return ts_ns // DAY_NS


def partition_name(day: int) -> str:
    return PARTITION_PREFIX + datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y%m%d")


def partition_day(name: str) -> int | None:
    """The day a partition named by `partition_name` holds; None for any other table."""
    if not name.startswith(PARTITION_PREFIX):
        return None
    try:
        when = datetime.strptime(name.removeprefix(PARTITION_PREFIX), "%Y%m%d")
    except ValueError:
        return None
    return int(when.replace(tzinfo=UTC).timestamp()) // 86_400


def wanted_days(now_ns: int, ahead: int = PARTITIONS_AHEAD) -> range:
    """Days that should have a partition: yesterday (late events) through `ahead` days on."""
    today = day_of(now_ns)
    return range(today - 1, today + ahead + 1)


def droppable(days: list[int], now_ns: int, longest_days: int) -> list[int]:
    """Partitions (by day) wholly past the longest retention of any account."""
    limit = cutoff_ns(now_ns, longest_days)
    return sorted(d for d in days if (d + 1) * DAY_NS <= limit)
