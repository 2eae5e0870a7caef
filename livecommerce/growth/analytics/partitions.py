"""Day partitions of ``analytics_events``: created ahead, dropped past the retention.

A partition is named ``analytics_events_YYYYMMDD`` and holds ``[day 00:00 UTC, next day)``.
Both steps are idempotent and safe to run on several nodes at once (``IF NOT EXISTS``; a
concurrent create of the same partition is caught by class).

Creating or dropping a partition locks the parent table exclusively, and every event write
queues behind a waiting exclusive lock: behind a long report query, an unbounded wait would
stall ingestion (then 503 ``buffer_full``). Each statement waits at most ``LOCK_WAIT_MS`` for
its locks and is skipped otherwise (logged); the next maintenance pass tries again, and
partitions are made days ahead, so a skipped pass costs nothing.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta

import asyncpg

log = logging.getLogger("livecommerce.analytics")
PARENT = "analytics_events"
_NAME = re.compile(r"^analytics_events_(\d{8})$")
LOCK_WAIT_MS = 1000  # the longest an event write may queue behind partition maintenance


async def _ddl(conn: asyncpg.Connection, sql: str) -> bool:
    """Run one DDL statement waiting at most ``LOCK_WAIT_MS`` for its locks; False (logged)
    when it could not get them."""
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}")
            await conn.execute(sql)
    except asyncpg.LockNotAvailableError:
        log.warning("analytics partitions: %r skipped (table busy); the next pass retries", sql)
        return False
    return True


def partition_name(day: date) -> str:
    return f"{PARENT}_{day:%Y%m%d}"


async def create_partition(conn: asyncpg.Connection, day: date) -> bool:
    """Create the partition of ``day`` unless it exists; True when this call created it (False
    also when the parent stayed locked for ``LOCK_WAIT_MS``)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    name = partition_name(day)
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
    if exists:
        return False
    try:
        return await _ddl(
            conn,
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')",
        )
    except (asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
        return False  # another node made it meanwhile


async def ensure_partitions(
    conn: asyncpg.Connection, today: date, *, back_days: int, ahead_days: int
) -> list[str]:
    """Partitions for ``today - back_days .. today + ahead_days``; returns those created."""
    made = []
    for offset in range(-back_days, ahead_days + 1):
        day = today + timedelta(days=offset)
        if await create_partition(conn, day):
            made.append(partition_name(day))
    return made


async def existing_days(conn: asyncpg.Connection) -> list[date]:
    """The days that have a partition, oldest first."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass",
        PARENT,
    )
    days = []
    for row in rows:
        m = _NAME.match(row["relname"])
        if m:
            days.append(datetime.strptime(m.group(1), "%Y%m%d").date())
    return sorted(days)


async def drop_expired(conn: asyncpg.Connection, today: date, retention_days: int) -> list[str]:
    """Drop partitions whose whole day is older than ``retention_days`` before ``today``, and the
    dedup ids stored before that; returns the dropped partition names (one whose table stayed
    locked for ``LOCK_WAIT_MS`` is left for the next pass)."""
    cutoff = today - timedelta(days=retention_days)
    dropped = []
    for day in await existing_days(conn):
        if day < cutoff:
            name = partition_name(day)
            if await _ddl(conn, f"DROP TABLE IF EXISTS {name}"):
                dropped.append(name)
    cutoff_at = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
    await conn.execute("DELETE FROM analytics_event_ids WHERE stored_at < $1", cutoff_at)
    return dropped


async def maintain(
    pool: asyncpg.Pool, *, retention_days: int, ahead_days: int, back_days: int = 2
) -> tuple[list[str], list[str]]:
    """One maintenance pass (created, dropped) for today's UTC date."""
    today = datetime.now(UTC).date()
    async with pool.acquire() as conn:
        made = await ensure_partitions(conn, today, back_days=back_days, ahead_days=ahead_days)
        dropped = await drop_expired(conn, today, retention_days)
    return made, dropped
