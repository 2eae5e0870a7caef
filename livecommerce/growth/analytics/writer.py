"""The buffered event writer: two binary COPYs a flush, exact dedup by a primary key.

Crash guarantee — **acknowledge only after the write**: :meth:`Writer.write` returns (and so
the HTTP answer or the socket's ``tracked`` frame is sent) only after the transaction holding
its events has committed. A crash loses at most events that were never acknowledged; the client
retries them and the dedup stores each once. Graceful shutdown (:meth:`Writer.close`) refuses
new events and flushes every buffered one before it returns.

Exactly once, at write time: the primary key of ``analytics_event_ids`` decides, so a retried
batch, a resumed socket, two nodes or two flushers racing on one id all store it once. Every
flush is one transaction, on the fast path:

* ids this node committed recently (:class:`RecentIds`) and repeats inside the flush are set
  aside as duplicates (both are certain: the first is in PostgreSQL, the second is a copy);
* ``COPY`` of the remaining ids into ``analytics_event_ids`` — a unique violation (an id stored
  through another node, a flush racing this one, or longer ago than :class:`RecentIds` holds)
  aborts the transaction, and the flush is written the exact slow way instead;
* ``COPY`` of their rows straight into ``analytics_events`` (routed to the day partition).

The slow way (also the whole writer before 2026-11-30, see bench/README.md): ``COPY`` into a
temporary staging table, then one statement that inserts the distinct staged ids with
``ON CONFLICT DO NOTHING``, the rows of the ids it inserted, and answers the staged ids that
were not stored. COPY inserts rows in batches (one WAL record and buffer lock per page, not per
row), so the fast path costs PostgreSQL about half the CPU of the slow one
(``bench/ingest_pg_steps.py``).

The writer has a pool of its own (``writer_pool.py``: one connection per flusher) whose
``jsonb`` codec is the binary one for JSON *text* (a version byte, then the text): the rows
carry ``variants`` and ``props`` as JSON text, encoded once when the event was judged.

Memory is bounded: more than ``buffer_max_events`` waiting raises :class:`BufferFull` (the
endpoint answers 503 with ``Retry-After``) instead of growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from itertools import chain
from operator import attrgetter, itemgetter

import asyncpg

from livecommerce.aio import check_cancelled, wait_event
from livecommerce.growth.analytics.events import COLUMNS, Row

log = logging.getLogger("livecommerce.analytics")

STAGING = "analytics_staging"
_ID = itemgetter(0)  # a row's event_id
# A UUID's 16 bytes: the writer's key for an id (ordered as PostgreSQL orders uuids; asyncpg's
# UUID, which client rows carry, gives them in C).
_BYTES = attrgetter("bytes")


# The slow way's staging table: the JSON columns are staged as text and cast on the way into
# analytics_events.
_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGING} (
    event_id uuid, type text, occurred_at timestamptz, received_at timestamptz, source text,
    clamped boolean, actor text, user_id bigint, room_id bigint, goods_id bigint,
    push_seq bigint, order_id bigint, amount_fen bigint, page text, variants text, props text
) ON COMMIT DELETE ROWS"""
_COLS = ", ".join(COLUMNS)
# Answers only the staged ids that were NOT stored by this flush (a re-send of a stored event,
# or a repeat inside the flush: EXCEPT ALL keeps one copy per extra occurrence), each with
# whether another copy of it was stored now. The writer stages one row per id, the first copy
# (of several, DISTINCT ON would store an arbitrary one), so stored_now is false. In the common
# case nothing comes back: decoding every new id (a record and a UUID per row) cost the server
# ~1 µs an event (bench/README.md).
_DEDUP_INSERT = f"""
WITH s AS (SELECT DISTINCT ON (event_id) * FROM {STAGING} ORDER BY event_id),
     n AS (INSERT INTO analytics_event_ids (event_id) SELECT event_id FROM s
           ON CONFLICT DO NOTHING RETURNING event_id),
     i AS (INSERT INTO analytics_events ({_COLS})
           SELECT {_COLS.replace("variants, props", "variants::jsonb, props::jsonb")}
           FROM s JOIN n USING (event_id)
           RETURNING event_id),
     d AS (SELECT event_id FROM {STAGING} EXCEPT ALL SELECT event_id FROM i)
SELECT DISTINCT d.event_id, i.event_id IS NOT NULL AS stored_now FROM d LEFT JOIN i USING (event_id)
"""

# How many ids one generation of RecentIds holds (two are kept): ≈ 6 MB a generation; at
# 30,000 events/s a node remembers the last 4–8 s, at 300/s the last 7–14 minutes.
RECENT_IDS = 131_072


class RecentIds:
    """The ids of events this node committed lately, as ``UUID.bytes`` (two generations of at
    most ``size`` each: when the young one fills, it becomes the old one and the old one goes).
    Only a hint that saves PostgreSQL work: an id here is certainly stored already; an id not
    here may be too (the primary key still decides)."""

    __slots__ = ("old", "size", "young")

    def __init__(self, size: int = RECENT_IDS) -> None:
        self.size = size
        self.young: set[bytes] = set()
        self.old: set[bytes] = set()

    def __contains__(self, key: bytes) -> bool:
        return key in self.young or key in self.old

    def add_all(self, keys: set[bytes]) -> None:
        if len(self.young) + len(keys) > self.size:
            self.old, self.young = self.young, set()
        self.young |= keys


# Called after a commit with the rows just stored (the live counters), aside from the flusher.
OnStored = Callable[[list[Row]], Awaitable[None]]
# At most this many flushes' on_stored calls at once (Redis hung): then the flusher waits.
COUNTING_MAX = 64
# Makes the partitions of these days (a row fell outside every partition).
EnsureDays = Callable[[set[date]], Awaitable[None]]


class BufferFull(Exception):
    """The writer holds ``buffer_max_events`` already: answer 503 + Retry-After."""


class WriterClosed(Exception):
    """The writer is shutting down (the node is stopping): answer 503, retry elsewhere."""


class PartitionUnavailable(Exception):
    """A row's day has no partition and one could not be made now (maintenance holds the lock,
    or the day is past every partition): nothing of the flush is stored; answer 503, retry."""


class _Pending:
    """One ``write`` call's rows and the future its caller awaits (how many were new)."""

    __slots__ = ("done", "rows")

    def __init__(self, rows: Sequence[Row], done: asyncio.Future[int]) -> None:
        self.rows, self.done = rows, done


def _answer(taken: list[_Pending], answers: list[int]) -> None:
    """Each caller's future: how many of its rows were new (a cancelled caller's is done)."""
    for p, n in zip(taken, answers, strict=True):
        if not p.done.done():
            p.done.set_result(n)


class Writer:
    """One node's buffer of events on their way into PostgreSQL (see the module docstring).

    ``pool``: the writer's own (``writer_pool.create_writer_pool``: jsonb as JSON text).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_events: int,
        flush_events: int,
        flush_interval: float,
        flushers: int = 1,
        ensure_days: EnsureDays | None = None,
        on_stored: OnStored | None = None,
    ) -> None:
        self.pool = pool
        self.max_events, self.flush_events, self.flush_interval = (
            max_events,
            flush_events,
            flush_interval,
        )
        self.flushers = flushers
        self.ensure_days, self.on_stored = ensure_days, on_stored
        self._queue: deque[_Pending] = deque()
        self.buffered = 0  # events accepted and not yet committed (or failed)
        self._wake = asyncio.Event()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._counting: set[asyncio.Task[None]] = set()  # on_stored calls in flight
        self.stored_total = 0
        self.duplicates_total = 0
        self.recent = RecentIds()
        self.slow_flushes = 0  # flushes that met an id stored elsewhere (unique violation)

    # -- API

    async def write(self, rows: Sequence[Row]) -> int:
        """Buffer ``rows`` and wait for their commit; returns how many were new (the others
        were stored before: duplicates).

        Raises:
            BufferFull: the buffer cannot take them now (nothing was buffered).
            WriterClosed: the node is shutting down (nothing was buffered).
            PartitionUnavailable: a day's partition could not be made (nothing stored; retry).
            asyncpg / OSError: the flush failed; nothing is acknowledged (retry).
        """
        if not rows:
            return 0
        if self._closed:
            raise WriterClosed("the event writer is shutting down")
        if self.buffered + len(rows) > self.max_events:
            raise BufferFull(f"{self.buffered} events are waiting to be written")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(rows, done))
        self.buffered += len(rows)
        self._wake.set()
        # A caller cancelled (its client went away) cancels only its own future: the rows
        # stay queued and are written; the flusher skips answering a future that is done.
        return await done

    def start(self) -> None:
        """Start the flushers (called by the cleanup context)."""
        for i in range(self.flushers):
            self._tasks.append(asyncio.create_task(self._run(), name=f"analytics-flusher-{i}"))

    async def close(self, grace_seconds: float = 30.0) -> None:
        """Refuse new events, let the flushers write every buffered one (an in-flight flush is
        never cancelled while it has time), then stop them; wait for the last live counting."""
        self._closed = True
        self._wake.set()
        deadline = time.monotonic() + grace_seconds
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        while self._queue:  # flushers that did not start, or were stuck past the timeout
            await self._flush_once()
        if self._counting:  # the live counters of the last flushes, in what is left of grace
            await asyncio.wait(self._counting, timeout=max(0.0, deadline - time.monotonic()))

    # -- flushing

    async def _run(self) -> None:
        while True:
            check_cancelled()
            if not self._queue:
                if self._closed:
                    return  # everything buffered is written: the graceful end
                self._wake.clear()
                await wait_event(self._wake, 3600.0)
                # Coalesce for up to flush_interval unless the buffer is already big enough.
                if not self._closed and self.buffered < self.flush_events:
                    await asyncio.sleep(self.flush_interval)
            await self._flush_once()

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        n = 0
        while self._queue and (not taken or n + len(self._queue[0].rows) <= self.flush_events):
            item = self._queue.popleft()
            taken.append(item)
            n += len(item.rows)
        return taken

    async def _flush_once(self) -> None:
        taken = self._take()
        if not taken:
            return
        rows = list(chain.from_iterable(p.rows for p in taken))
        try:
            stored = await self._store(rows)
        except BaseException as exc:
            self.buffered -= len(rows)
            for p in taken:
                if not p.done.done():
                    if isinstance(exc, asyncio.CancelledError):
                        p.done.set_exception(WriterClosed("the event writer stopped"))
                    else:
                        p.done.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("event flush of %d rows failed: %s", len(rows), exc)
            return
        self.buffered -= len(rows)
        if len(stored) == len(rows):  # every row new (and so distinct)
            stored_rows = rows
            answers = [len(p.rows) for p in taken]
        else:  # each caller: how many of its rows were stored (the others are duplicates)
            at = sorted(stored.values())
            stored_rows = list(map(rows.__getitem__, at))
            answers, start = [], 0
            for p in taken:
                end = start + len(p.rows)
                answers.append(bisect_left(at, end) - bisect_left(at, start))
                start = end
        self.stored_total += len(stored_rows)
        self.duplicates_total += len(rows) - len(stored_rows)
        answered = False
        if self.on_stored is not None and stored_rows:
            # Counted aside: a slow or hung Redis must not hold up the next flush.
            # At the bound, answer, then wait for one to end (memory stays bounded, nothing
            # goes uncounted: the exposures of on_stored are results data, not best effort).
            if len(self._counting) >= COUNTING_MAX:
                _answer(taken, answers)
                answered = True
                while len(self._counting) >= COUNTING_MAX:
                    await asyncio.wait(self._counting, return_when=asyncio.FIRST_COMPLETED)
            # Otherwise started before the answers: its first step (which sends the Redis
            # pipeline) runs before the callers wake, so a client that reads the live figures
            # after its answer sees its events counted, as when the flusher awaited it.
            task = asyncio.create_task(self._count(self.on_stored, stored_rows))
            self._counting.add(task)
            task.add_done_callback(self._counting.discard)
        if not answered:
            _answer(taken, answers)

    @staticmethod
    async def _count(on_stored: OnStored, rows: list[Row]) -> None:
        try:
            await on_stored(rows)
        except Exception as exc:  # live counters are best effort, the rows are stored
            log.warning("live counters not updated: %s", exc)

    async def _store(self, rows: list[Row]) -> dict[bytes, int]:
        """Write ``rows``: the ids stored by this call (as ``UUID.bytes``), each with the index
        of its row in ``rows`` (an id's first row; its other rows, and every row of an id stored
        before, are duplicates)."""
        started = time.perf_counter()
        ids = list(map(_BYTES, map(_ID, rows)))
        # Each id's first row (fed backwards, the dict keeps the first index), in C.
        first = dict(zip(reversed(ids), range(len(ids) - 1, -1, -1), strict=True))
        recent = self.recent
        for key in (first.keys() & recent.young) | (first.keys() & recent.old):
            del first[key]  # committed by this node before: none of its rows is stored
        # Ascending ids, as the slow way's statement inserts them: two flushes (nodes) holding
        # some of the same new ids then wait for each other in one order, never in a cycle
        # (a deadlock, found by tests/growth/analytics/test_writer.py's race).
        # (Sorting the bytes alone: twice as fast as sorting (bytes, index) pairs.)
        fresh = list(map(rows.__getitem__, map(first.__getitem__, sorted(first))))
        keys = set(first)
        for attempt in (1, 2):
            if not fresh:
                break  # every row a duplicate this node knows: nothing to write
            try:
                async with self.pool.acquire() as conn:
                    try:
                        async with conn.transaction():
                            await conn.copy_records_to_table(
                                "analytics_event_ids",
                                # 1-tuples made (and reused) by zip in C, one per row
                                records=zip(map(_ID, fresh)),
                                columns=("event_id",),
                            )
                            await conn.copy_records_to_table(
                                "analytics_events", records=fresh, columns=COLUMNS
                            )
                    except asyncpg.UniqueViolationError:
                        # Some id is stored already (another node, a racing flush, or longer
                        # ago than `recent` holds): the exact slow way for the same rows (the
                        # first copy of each id, as counted), answering those stored before.
                        self.slow_flushes += 1
                        async with conn.transaction():
                            await conn.execute(_CREATE_STAGING)
                            await conn.copy_records_to_table(
                                STAGING, records=fresh, columns=COLUMNS
                            )
                            got = await conn.fetch(_DEDUP_INSERT)
                        for r in got:  # stored before: none of its copies is stored now
                            first.pop(r[0].bytes, None)
                break
            except asyncpg.CheckViolationError as exc:
                # "no partition of relation found for row": make the days' partitions, retry.
                days = {r[2].date() for r in rows}
                if attempt == 2 or self.ensure_days is None:
                    raise PartitionUnavailable(f"no partition for {sorted(days)}") from exc
                try:
                    await self.ensure_days(days)
                except asyncpg.PostgresError as made:  # its lock wait (1 s) ran out, say
                    raise PartitionUnavailable(f"partitions not made now: {made}") from made
        # Every id of a committed flush is in analytics_event_ids now (stored by it or before).
        recent.add_all(keys)
        log.debug(
            "flushed %d rows (%d stored) in %.1f ms",
            len(rows),
            len(first),
            (time.perf_counter() - started) * 1000,
        )
        return first
