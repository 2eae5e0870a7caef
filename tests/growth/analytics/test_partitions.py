"""Day partitions of analytics_events: made ahead, dropped past retention, rows routed by day."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import asyncpg

from livecommerce.growth.analytics import partitions


async def test_created_ahead_and_dropped_past_retention(pool: asyncpg.Pool) -> None:
    """ensure_partitions makes today-back..today+ahead; drop_expired removes only old days."""
    today = date(2030, 6, 15)
    async with pool.acquire() as conn:
        made = await partitions.ensure_partitions(conn, today, back_days=1, ahead_days=2)
        assert made == [partitions.partition_name(today + timedelta(days=d)) for d in (-1, 0, 1, 2)]
        assert await partitions.ensure_partitions(conn, today, back_days=1, ahead_days=2) == []
        old = datetime(2030, 6, 14, 12, tzinfo=UTC)
        await conn.execute(
            "INSERT INTO analytics_events (event_id, type, occurred_at, received_at, source, actor)"
            " VALUES (gen_random_uuid(), 'page_view', $1, $1, 'client', 'viewer:x')",
            old,
        )
        await conn.execute(
            "INSERT INTO analytics_event_ids (event_id, stored_at) VALUES (gen_random_uuid(), $1)",
            old,
        )
        where = await conn.fetchval(
            "SELECT tableoid::regclass::text FROM analytics_events WHERE occurred_at = $1", old
        )
        assert where == "analytics_events_20300614"
        before = await partitions.existing_days(conn)
        dropped = await partitions.drop_expired(conn, date(2030, 6, 16), retention_days=1)
        # Every day before the cutoff (2030-06-15) goes, today's real ones included.
        want = [partitions.partition_name(d) for d in before if d < date(2030, 6, 15)]
        assert dropped == want
        assert "analytics_events_20300614" in dropped
        days = await partitions.existing_days(conn)
        assert date(2030, 6, 14) not in days
        assert date(2030, 6, 15) in days
        assert await conn.fetchval("SELECT count(*) FROM analytics_event_ids") == 0
        for day in (d for d in days if d.year == 2030):
            await conn.execute(f"DROP TABLE {partitions.partition_name(day)}")


async def test_maintenance_never_stalls_writes_behind_a_long_report(pool: asyncpg.Pool) -> None:
    """A report holding the events table (a long read) makes a partition drop wait at most
    LOCK_WAIT_MS, then skip; event writes meanwhile are not held longer than that; the next
    pass, once the report is done, drops it."""
    today = date(2031, 3, 10)
    async with pool.acquire() as conn, pool.acquire() as report, pool.acquire() as writer:
        await partitions.ensure_partitions(conn, today, back_days=2, ahead_days=0)
        tx = report.transaction()
        await tx.start()
        await report.fetchval("SELECT count(*) FROM analytics_events")  # holds ACCESS SHARE
        started = time.monotonic()
        dropped = await partitions.drop_expired(conn, today, retention_days=1)
        assert time.monotonic() - started < 10  # bounded: one LOCK_WAIT_MS per old partition
        assert partitions.partition_name(today - timedelta(days=2)) not in dropped
        # A write is not queued behind a waiting exclusive lock any more.
        t0 = time.monotonic()
        await writer.execute(
            "INSERT INTO analytics_events (event_id, type, occurred_at, received_at, source, actor)"
            " VALUES (gen_random_uuid(), 'page_view', $1, $1, 'client', 'viewer:y')",
            datetime(2031, 3, 10, 1, tzinfo=UTC),
        )
        assert time.monotonic() - t0 < partitions.LOCK_WAIT_MS / 1000 + 1
        await tx.rollback()
        dropped = await partitions.drop_expired(conn, today, retention_days=1)
        assert partitions.partition_name(today - timedelta(days=2)) in dropped
        for day in (d for d in await partitions.existing_days(conn) if d.year == 2031):
            await conn.execute(f"DROP TABLE {partitions.partition_name(day)}")
