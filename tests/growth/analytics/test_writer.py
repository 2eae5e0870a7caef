"""The event writer on real PostgreSQL: the COPY fast path, its exact fallback, and races.

Two :class:`Writer` objects on one database stand for two nodes: each remembers only the ids it
committed itself (``RecentIds``), so an id first stored through the other one reaches the
primary key of ``analytics_event_ids`` and must be answered as a duplicate, stored once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from livecommerce.growth.analytics.events import Row
from livecommerce.growth.analytics.writer import PartitionUnavailable, RecentIds, Writer
from tests.growth.analytics.conftest import counts, ensurer, row, started


async def test_fast_path_stores_rows_and_json(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """The fast path COPYs straight into analytics_events: JSON text lands as jsonb."""
    w = await started(writer_pool)
    try:
        r = row(props='{"k":"值"}', variants='{"exp":"b"}')
        assert await w.write([r]) == 1
        got = await pool.fetchrow(
            "SELECT props->>'k' AS k, variants->>'exp' AS v, jsonb_typeof(props) AS t"
            " FROM analytics_events WHERE event_id = $1",
            r[0],
        )
        assert got is not None
        assert (got["k"], got["v"], got["t"]) == ("值", "b", "object")
        assert await pool.fetchval("SELECT count(*) FROM analytics_event_ids") == 1
        assert w.slow_flushes == 0
    finally:
        await w.close()


async def test_repeat_on_this_node_never_reaches_postgres(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """An id this node committed is answered as a duplicate without a unique violation."""
    w = await started(writer_pool)
    try:
        first = row()
        assert await w.write([first]) == 1
        again, other = row(first[0]), row()
        assert await w.write([again, other, again]) == 1
        assert w.slow_flushes == 0
        assert await counts(pool, [first[0], other[0]]) == {first[0]: 1, other[0]: 1}
    finally:
        await w.close()


async def test_repeat_through_another_node_is_stored_once(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """An id stored through node A, resent to node B (which never saw it) with new ids around
    it: B's COPY meets the primary key, the flush is written the exact slow way, the resent
    event is a duplicate and the new ones are stored."""
    a, b = await started(writer_pool), await started(writer_pool)
    try:
        sent = [row() for _ in range(5)]
        assert await a.write(sent) == 5
        fresh = [row() for _ in range(3)]
        assert await b.write([row(sent[2][0]), *fresh, row(fresh[0][0])]) == 3
        assert b.slow_flushes == 1
        ids = [r[0] for r in sent + fresh]
        assert await counts(pool, ids) == dict.fromkeys(ids, 1)
        # B now knows them: the next resend is settled without PostgreSQL.
        assert await b.write([row(sent[2][0])]) == 0
        assert b.slow_flushes == 1
    finally:
        await a.close()
        await b.close()


async def test_forgotten_ids_still_deduplicated(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """RecentIds only saves work: once an id has left it, the primary key still decides."""
    w = await started(writer_pool)
    w.recent = RecentIds(size=4)
    try:
        old = [row() for _ in range(4)]
        assert await w.write(old) == 4
        for _ in range(3):  # two generations of 4 later, `old` is forgotten
            assert await w.write([row() for _ in range(4)]) == 4
        assert old[0][0].int not in w.recent
        assert await w.write([row(old[0][0]), row()]) == 1
        assert w.slow_flushes == 1
        assert await counts(pool, [old[0][0]]) == {old[0][0]: 1}
    finally:
        await w.close()


async def test_racing_nodes_store_each_id_once(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """Four writers (two nodes' flushers each) send the same 2,000 ids at once, in different
    orders and batch sizes, five rounds: every id stored exactly once, the answers add up, and
    no flush fails (two flushes taking shared new ids in different orders deadlocked)."""
    writers = [await started(writer_pool) for _ in range(4)]
    try:

        async def send(w: Writer, order: list[uuid.UUID], batch: int) -> int:
            n = 0
            for i in range(0, len(order), batch):
                n += await w.write([row(x) for x in order[i : i + batch]])
            return n

        for _ in range(5):
            ids = [uuid.uuid4() for _ in range(2000)]
            orders = [ids, ids[::-1], ids[1000:] + ids[:1000], ids[::2] + ids[1::2]]
            stored = await asyncio.gather(
                *(
                    send(w, o, b)
                    for w, o, b in zip(writers, orders, (100, 250, 37, 500), strict=True)
                )
            )
            assert sum(stored) == 2000
            assert await counts(pool, ids) == dict.fromkeys(ids, 1)
    finally:
        for w in writers:
            await w.close()


async def test_missing_partition_is_made_on_the_fast_path(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """A row of a day with no partition: the writer makes it (ensure_days) and stores the row."""
    made: list[set[date]] = []
    w = await started(writer_pool, ensure_days=ensurer(pool, made))
    try:
        later = datetime.now(UTC) + timedelta(days=20)
        r = row(at=later)
        assert await w.write([r, row()]) == 2
        assert made == [{later.date(), datetime.now(UTC).date()}]
        assert await counts(pool, [r[0]]) == {r[0]: 1}
    finally:
        await w.close()


async def test_counting_starts_before_the_answer(writer_pool: asyncpg.Pool) -> None:
    """The live counting (on_stored) is started before the callers are answered, so a client
    that reads the live figures after its answer finds its events counted (the counting's
    Redis pipeline is sent in its first step), while a slow counting never holds the answer."""
    begun: list[int] = []
    release = asyncio.Event()

    async def on_stored(rows: list[Row]) -> None:
        begun.append(len(rows))  # before the first await: where the pipeline is sent
        await release.wait()

    w = await started(writer_pool, on_stored=on_stored)
    try:
        async with asyncio.timeout(2):  # no extra task between the answer and this check
            stored = await w.write([row(), row()])
        assert (stored, begun) == (2, [2])
    finally:
        release.set()
        await w.close()


async def test_a_day_that_cannot_be_made_is_unavailable(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """A row of a day without a partition, and the partition cannot be made now (its lock wait
    ran out, or it is still missing): PartitionUnavailable (503, retry), nothing stored."""

    async def lock_timeout(days: set[date]) -> None:
        raise asyncpg.LockNotAvailableError("canceling statement due to lock timeout")

    async def makes_nothing(days: set[date]) -> None:
        return None

    later = datetime.now(UTC) + timedelta(days=40)
    for ensure in (lock_timeout, makes_nothing):
        w = await started(writer_pool, ensure_days=ensure)
        try:
            today = row()
            with pytest.raises(PartitionUnavailable):
                await w.write([row(at=later), today])
            assert await counts(pool, [today[0]]) == {}
            assert await w.write([today]) == 1  # the retry, without the far day, is stored
        finally:
            await w.close()
