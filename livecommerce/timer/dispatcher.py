"""Each node's dispatcher: sleeps until the earliest due push, claims, fires, records.

No fixed polling interval: after each claim the dispatcher sleeps exactly until the next due
time (or lease expiry) the claim script reported, measured on Redis' clock, and is woken early
by a ``lc:timer:wake`` message whenever a push is added. ``timer.idle_recheck_seconds`` is only
a safety net for a lost notification.

Exactly once = claim with lease + fire under a PostgreSQL row lock + idempotent publish:

1. the claim script moves due members to the lease set atomically (one dispatcher each);
2. for a batch of claimed members, one transaction locks the rows (``FOR UPDATE``), drops those
   no longer ``pending`` at that version (cancelled, rescheduled, fired), publishes the rest
   through the room publish path with idempotency key ``sched:<id>:<version>``, and records
   ``fired``/``skipped`` with fired_at, lateness and the frame's seq;
3. then acks (removes) the leases.

A dispatcher that dies after claiming leaves leases that expire; another node claims them again
and repeats step 2 — the row is still pending (its transaction never committed), and if the
publish did happen, the idempotency key returns the first seq instead of publishing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, cast

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce import redis_keys as rk
from livecommerce.aio import stop_task, wait_event
from livecommerce.config import TimerConfig
from livecommerce.metrics import Metrics
from livecommerce.realtime.broker import Broker, PublishItem
from livecommerce.rooms.service import goods_push_body
from livecommerce.timer import service
from livecommerce.timer.wheel import Claim, Wheel, parse_member

log = logging.getLogger("livecommerce.timer")
ERROR_BACKOFF_SECONDS = 0.5
EARLY_WAKE_SECONDS = 0.0015


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        wheel: Wheel,
        broker: Broker,
        cfg: TimerConfig,
        metrics: Metrics,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.wheel = wheel
        self.broker = broker
        self.cfg = cfg
        self.metrics = metrics
        self.wake = asyncio.Event()
        self.listening = asyncio.Event()

    async def run(self) -> None:
        """Forever: claim and fire what is due, then sleep until the next due time or a wake."""
        listener = asyncio.create_task(self._listen(), name="timer-wake-listener")
        # Rebuilt at start too: a wheel add that failed after its PostgreSQL commit is repaired.
        rebuild = True
        try:
            while True:
                try:
                    if rebuild:
                        await self.rebuild()
                        rebuild = False
                    # Cleared before the claim: a wake for anything added after the claim ran
                    # is never lost.
                    self.wake.clear()
                    claim = await self.wheel.claim()
                    if not claim.built:
                        rebuild = True
                        continue
                    if claim.members:
                        await self.fire(claim.members)
                        continue
                    await self._sleep(claim)
                except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("timer dispatcher error (%s); retrying", exc)
                    await asyncio.sleep(ERROR_BACKOFF_SECONDS)
        finally:
            await stop_task(listener)

    async def _sleep(self, claim: Claim) -> None:
        received = time.monotonic()
        delay = self.cfg.idle_recheck_seconds
        if claim.next_wake_ms is not None:
            # A little early: event-loop timers round up to the millisecond, and waking early is
            # harmless (the claim only ever takes what is due by Redis' clock).
            until = (claim.next_wake_ms - claim.now_ms) / 1000 - EARLY_WAKE_SECONDS
            delay = min(delay, max(0.0, until))
        delay -= time.monotonic() - received
        if delay <= 0:
            return
        await wait_event(self.wake, delay)

    async def _listen(self) -> None:
        """Set ``wake`` whenever a push is added anywhere in the cluster."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(rk.TIMER_WAKE_CHANNEL)
                self.listening.set()
                self.wake.set()  # anything added while we were not listening
                while True:
                    msg = await pubsub.get_message(timeout=None)
                    if msg is not None and msg["type"] == "message":
                        self.wake.set()
            except (RedisError, OSError) as exc:
                log.warning("timer wake subscription lost (%s); reconnecting", exc)
                self.listening.clear()
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
            finally:
                with contextlib.suppress(TimeoutError, RedisError, OSError):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]

    async def rebuild(self) -> None:
        """Put every pending schedule from PostgreSQL on the wheel (after Redis lost its data).

        Idempotent (ZADD of the same member and score). Leased members are left to their lease;
        should one still be claimed twice, the row lock and idempotent publish make it harmless.
        """
        if not await self.redis.set(rk.TIMER_REBUILD_LOCK, "1", nx=True, px=30_000):
            return
        try:
            for room_id in await service.rooms_with_unresolved_offsets(self.pool):
                await service.resolve_offsets(self.pool, self.wheel, room_id)
            # Members leased by a live node stay with it (its lease expiring is the fallback).
            raw = cast("list[bytes]", await self.redis.zrange(rk.TIMER_LEASES, 0, -1))
            leased = {m.decode() for m in raw}
            entries = [e for e in await service.wheel_entries(self.pool) if e[0] not in leased]
            for i in range(0, len(entries), 1000):
                await self.wheel.add(entries[i : i + 1000])
            await self.redis.set(rk.TIMER_BUILT, "1")
            if entries:
                log.info("timer wheel rebuilt from PostgreSQL: %d pending pushes", len(entries))
        finally:
            await self.redis.delete(rk.TIMER_REBUILD_LOCK)

    async def fire(self, members: list[str]) -> None:
        """Deliver one claimed batch (see the module docstring), then ack it."""
        wanted: dict[int, int] = {}
        for m in members:
            parsed = parse_member(m)
            if parsed is not None:
                wanted[parsed[0]] = parsed[1]
        if wanted:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    """SELECT s.id, s.version, s.room_id, s.show_seconds, s.due_at, s.status,
                              r.state AS room_state, g.id AS goods_id, g.title, g.price_fen,
                              g.stock, g.images, g.status AS goods_status
                       FROM live_schedules s
                       JOIN live_rooms r ON r.id = s.room_id
                       JOIN goods g ON g.id = s.goods_id
                       WHERE s.id = ANY($1::bigint[])
                       ORDER BY s.due_at, s.id
                       FOR UPDATE OF s""",
                    list(wanted),
                )
                outcomes = await self._publish_due(
                    [
                        r
                        for r in rows
                        if r["status"] == "pending" and r["version"] == wanted[r["id"]]
                    ]
                )
                if outcomes:
                    await conn.executemany(
                        """UPDATE live_schedules
                           SET status = $2, fired_at = CASE WHEN $2 = 'fired' THEN now() END,
                               lateness_ms = $3, late = $4, publish_seq = $5, skip_reason = $6,
                               updated_at = now()
                           WHERE id = $1 AND status = 'pending'""",
                        outcomes,
                    )
        await self.wheel.ack(members)

    async def _publish_due(self, rows: list[asyncpg.Record]) -> list[tuple[Any, ...]]:
        """Skip what must not fire; publish the rest in one pipelined round trip."""
        outcomes: list[tuple[Any, ...]] = []
        max_late_ms = self.cfg.max_lateness_seconds * 1000
        now_ms = int(time.time() * 1000)
        firing: list[tuple[asyncpg.Record, int]] = []
        for row in rows:
            due = service.due_ms(row)
            lateness = now_ms - due
            reason = None
            if lateness > max_late_ms:
                reason = "too_late"
            elif row["room_state"] != "live":
                reason = "room_not_live"
            elif row["goods_status"] != "on_sale":
                reason = "goods_gone"
            if reason is None:
                firing.append((row, due))
                continue
            self.metrics.timer_pushes.labels("skipped").inc()
            late = lateness > self.cfg.late_after_ms
            outcomes.append((row["id"], "skipped", max(0, lateness), late, None, reason))
        published = await self.broker.publish_many([self._push(row, due) for row, due in firing])
        for (row, due), pub in zip(firing, published, strict=True):
            # The frame's ts is Redis time at publish; a replay (fresh=False) has no new frame.
            lateness = int(orjson.loads(pub.frame)["ts"]) - due if pub.fresh else now_ms - due
            self.metrics.timer_lateness.observe(max(0, lateness) / 1000)
            self.metrics.timer_pushes.labels("fired").inc()
            late = lateness > self.cfg.late_after_ms
            outcomes.append((row["id"], "fired", max(0, lateness), late, pub.seq, None))
        return outcomes

    @staticmethod
    def _push(row: asyncpg.Record, due: int) -> PublishItem:
        goods = {
            "id": row["goods_id"], "title": row["title"], "price_fen": row["price_fen"],
            "stock": row["stock"], "images": row["images"],
        }  # fmt: skip
        return PublishItem(
            row["room_id"],
            goods_push_body(goods, row["show_seconds"], schedule_id=row["id"], due_ms=due),
            state_op="set",
            state_field="bubble",
            idempotency_key=f"sched:{row['id']}:{row['version']}",
        )
