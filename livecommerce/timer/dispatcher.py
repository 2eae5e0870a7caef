"""Each node's dispatcher: sleeps until just before the earliest due push, claims, fires, records.

No fixed polling interval: after each claim the dispatcher sleeps until the next due time minus
``timer.lookahead_ms`` (or a lease expiry) that the claim script reported, measured on Redis'
clock, and is woken early by a ``lc:timer:wake`` message whenever a push is added.
``timer.idle_recheck_seconds`` is only a safety net for a lost notification.

Exactly once = claim with lease + fire under a PostgreSQL row lock + idempotent publish:

1. the claim script moves members due within the look-ahead to the lease set atomically (one
   dispatcher each);
2. for a claimed batch, one transaction locks the rows (``FOR UPDATE``) and drops those no
   longer ``pending`` at that version (cancelled, rescheduled, fired); it then waits for each
   due time (the look-ahead paid for the claim, the lock and building the frames) and publishes
   that due time's pushes through the room publish path with idempotency key
   ``sched:<id>:<version>`` in one pipelined round trip, and records ``fired``/``skipped`` with
   fired_at, lateness and the frame's seq;
3. then acks (removes) the leases.

Batches fire concurrently (a burst being locked does not hold up the next due push). A cancel
or reschedule that reaches a row inside the look-ahead window waits on the row lock and then
finds it fired: it did not commit before the due time, so the old time fired.

A dispatcher that dies after claiming leaves leases that expire; another node claims them again
and repeats step 2 — the row is still pending (its transaction never committed), and if the
publish did happen, the idempotency key returns the first seq instead of publishing twice.

Redis may lose the wheel (restart empty, restore from an older snapshot whose ``built`` marker
says nothing of what was added since, failover). PostgreSQL is the record, so the wheel is
reconciled against it: a full rebuild when the wheel is not built, at start, and after any
Redis error or reconnect (of the claim loop or the wake subscription); and every
``timer.reconcile_seconds`` the pending pushes due within ``RECONCILE_AHEAD_SECONDS`` (or two
periods) that are neither on the wheel nor leased are put back (:meth:`Wheel.restore`). Either
way the firing path above keeps it exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce import redis_keys as rk
from livecommerce.aio import check_cancelled, close_within, sleep_until, stop_task, wait_event
from livecommerce.config import TimerConfig
from livecommerce.growth.experiments.bubbles import running_experiments, variant_push_body
from livecommerce.metrics import Metrics
from livecommerce.realtime.broker import Broker, Published, PublishItem
from livecommerce.redis_clients import subscription_client
from livecommerce.rooms.service import goods_push_body
from livecommerce.timer import service
from livecommerce.timer.wheel import Claim, Wheel, parse_member

log = logging.getLogger("livecommerce.timer")
ERROR_BACKOFF_SECONDS = 0.5
REBUILD_BUSY_SECONDS = 0.05
# Batches being locked, waited for and published at once; each holds a pool connection.
MAX_FIRING_BATCHES = 4
# A batch that will not finish is abandoned on shutdown after this long (its leases expire and
# another node delivers it, once).
FIRING_STOP_SECONDS = 5.0
# The periodic reconciliation checks pending pushes due up to this far ahead (and overdue ones),
# at least twice the period: a lost push is put back before its due time whenever Redis is up.
RECONCILE_AHEAD_SECONDS = 60.0


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
        self._slots = asyncio.Semaphore(MAX_FIRING_BATCHES)
        self._firing: set[asyncio.Task[None]] = set()
        # Set when Redis may have lost the wheel (an error, a reconnect): rebuild before claiming.
        self.redis_lost = False
        self._next_reconcile = 0.0  # monotonic time of the next periodic reconciliation

    async def run(self) -> None:
        """Forever: claim and fire what is due, then sleep until the next due time or a wake."""
        listener = asyncio.create_task(self._listen(), name="timer-wake-listener")
        # Rebuilt at start too: a wheel add that failed after its PostgreSQL commit is repaired.
        rebuild = True
        try:
            while True:
                check_cancelled()
                try:
                    if self.redis_lost:
                        self.redis_lost, rebuild = False, True
                    if rebuild:
                        if not await self.rebuild():
                            # Another node is rebuilding: claims find the wheel unbuilt until
                            # it is done, so wait a little rather than spin on Redis.
                            await asyncio.sleep(REBUILD_BUSY_SECONDS)
                        rebuild = False
                        self._next_reconcile = time.monotonic() + self.cfg.reconcile_seconds
                    if time.monotonic() >= self._next_reconcile:
                        await self.reconcile()
                    # Cleared before the claim: a wake for anything added after the claim ran
                    # is never lost.
                    self.wake.clear()
                    claim = await self.wheel.claim()
                    # Redis' clock minus ours (less half a round trip: errs towards late).
                    offset_ms = claim.now_ms - time.time() * 1000
                    if not claim.built:
                        rebuild = True
                        continue
                    if claim.members:
                        await self._start_firing(claim.members, offset_ms)
                        continue
                    await self._sleep(claim)
                except (RedisError, OSError) as exc:
                    log.warning("timer dispatcher: Redis error (%s); rebuilding, retrying", exc)
                    rebuild = True
                    await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("timer dispatcher error (%s); retrying", exc)
                    await asyncio.sleep(ERROR_BACKOFF_SECONDS)
        finally:
            await stop_task(listener)
            await self._stop_firing()

    async def _start_firing(self, members: list[str], offset_ms: float) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._fire_batch(members, offset_ms), name="timer-fire")
        self._firing.add(task)
        task.add_done_callback(self._firing.discard)

    async def _fire_batch(self, members: list[str], offset_ms: float) -> None:
        try:
            await self.fire(members, offset_ms)
        except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Not acked: the leases expire and a dispatcher claims the batch again.
            log.warning("timer batch of %d failed (%s); retried after its lease", len(members), exc)
        finally:
            self._slots.release()

    async def _stop_firing(self) -> None:
        """Let batches in flight finish (bounded), then cancel the rest."""
        if not self._firing:
            return
        _, pending = await asyncio.wait(list(self._firing), timeout=FIRING_STOP_SECONDS)
        for task in pending:
            await stop_task(task)

    async def _sleep(self, claim: Claim) -> None:
        received = time.monotonic()
        delay = self.cfg.idle_recheck_seconds
        wake_ms = claim.next_claim_ms(self.cfg.lookahead_ms)
        if wake_ms is not None:
            delay = min(delay, max(0.0, (wake_ms - claim.now_ms) / 1000))
        delay = min(delay, self._next_reconcile - received)
        delay -= time.monotonic() - received
        if delay <= 0:
            return
        await wait_event(self.wake, delay)

    async def _listen(self) -> None:
        """Set ``wake`` whenever a push is added anywhere in the cluster; after a reconnect,
        ask for a rebuild (``redis_lost``)."""
        # Its own client: one that is never silently resubscribed (redis_clients.py).
        subscriber = subscription_client(self.redis)
        try:
            await self._listen_forever(subscriber)
        finally:
            await close_within(subscriber.aclose(), 1.0)

    async def _listen_forever(self, subscriber: Redis) -> None:
        lost = False
        while True:
            check_cancelled()
            pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(rk.TIMER_WAKE_CHANNEL)
                if lost:
                    self.redis_lost = True  # Redis may have restarted without the wheel
                lost = False
                self.listening.set()
                self.wake.set()  # anything added while we were not listening
                while True:
                    check_cancelled()
                    msg = await pubsub.get_message(timeout=None)
                    if msg is not None and msg["type"] == "message":
                        self.wake.set()
            except (RedisError, OSError) as exc:
                log.warning("timer wake subscription lost (%s); reconnecting", exc)
                lost = True
                self.listening.clear()
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
            finally:
                await close_within(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]

    async def rebuild(self) -> bool:
        """Put every pending schedule from PostgreSQL on the wheel (after Redis lost its data);
        False when another node holds the rebuild lock.

        Idempotent (ZADD of the same member and score). Leased members are left to their lease;
        should one still be claimed twice, the row lock and idempotent publish make it harmless.
        """
        if not await self.redis.set(rk.TIMER_REBUILD_LOCK, "1", nx=True, px=30_000):
            return False
        try:
            for room_id in await service.rooms_with_unresolved_offsets(self.pool):
                await service.resolve_offsets(self.pool, self.wheel, room_id)
            # Members leased by a live node stay with it (its lease expiring is the fallback).
            leased = await self.wheel.leased()
            entries = [e for e in await service.wheel_entries(self.pool) if e[0] not in leased]
            for i in range(0, len(entries), 1000):
                await self.wheel.add(entries[i : i + 1000])
            await self.wheel.mark_built()
            if entries:
                log.info("timer wheel rebuilt from PostgreSQL: %d pending pushes", len(entries))
        finally:
            await self.redis.delete(rk.TIMER_REBUILD_LOCK)
        return True

    async def reconcile(self) -> int:
        """Put back the pending pushes due within ``RECONCILE_AHEAD_SECONDS`` (or overdue) that
        Redis lost — on neither the wheel nor the lease set; returns how many. Schedules the
        next periodic run."""
        self._next_reconcile = time.monotonic() + self.cfg.reconcile_seconds
        ahead = max(RECONCILE_AHEAD_SECONDS, 2 * self.cfg.reconcile_seconds)
        entries = await service.wheel_entries_due_within(self.pool, ahead)
        added = await self.wheel.restore(entries) if entries else 0
        if added:
            self.metrics.timer_reconciled.inc(added)
            self.wake.set()
            log.warning("timer wheel: %d pending pushes were missing from Redis; put back", added)
        return added

    async def fire(self, members: list[str], offset_ms: float = 0.0) -> None:
        """Deliver one claimed batch (see the module docstring), then ack it.

        ``offset_ms`` is Redis' clock minus ours: each push is published once our clock reads
        its due time on Redis' clock, never before.
        """
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
                              g.stock, g.images, g.status AS goods_status, s.experiment_id,
                              s.creatives
                       FROM live_schedules s
                       JOIN live_rooms r ON r.id = s.room_id
                       JOIN goods g ON g.id = s.goods_id
                       WHERE s.id = ANY($1::bigint[])
                       ORDER BY s.due_at, s.id
                       FOR UPDATE OF s""",
                    list(wanted),
                )
                by_due: dict[int, list[asyncpg.Record]] = {}
                for r in rows:
                    if r["status"] == "pending" and r["version"] == wanted[r["id"]]:
                        by_due.setdefault(service.due_ms(r), []).append(r)
                # Everything but the round trip happens before the due time: what to skip,
                # the frames' bodies, the encoded script calls.
                outcomes: list[tuple[Any, ...]] = []
                batches = []
                experiments = await running_experiments(conn, rows)
                for due in sorted(by_due):
                    skipped, firing = self._triage(by_due[due], due)
                    outcomes += skipped
                    pushes = [self._push(row, due, experiments) for row in firing]
                    batches.append((due, firing, self.broker.prepare(pushes)))
                for due, firing, calls in batches:
                    await sleep_until((due - offset_ms) / 1000)
                    outcomes += self._fired(firing, due, await self.broker.publish_prepared(calls))
                if outcomes:
                    await conn.executemany(
                        """UPDATE live_schedules
                           SET status = $2, fired_at = to_timestamp($7::float8 / 1000),
                               lateness_ms = $3, late = $4, publish_seq = $5, skip_reason = $6,
                               updated_at = now()
                           WHERE id = $1 AND status = 'pending'""",
                        outcomes,
                    )
        await self.wheel.ack(members)

    def _triage(
        self, rows: list[asyncpg.Record], due: int
    ) -> tuple[list[tuple[Any, ...]], list[asyncpg.Record]]:
        """(outcomes of the rows that must not fire, the rows to fire) for one due time."""
        skipped: list[tuple[Any, ...]] = []
        firing: list[asyncpg.Record] = []
        lateness = int(time.time() * 1000) - due  # negative while ahead of the due time
        for row in rows:
            reason = None
            if lateness > self.cfg.max_lateness_seconds * 1000:
                reason = "too_late"
            elif row["room_state"] == "ended":
                reason = "room_ended"
            elif row["room_state"] != "live":
                reason = "room_not_live"
            elif row["goods_status"] != "on_sale":
                reason = "goods_gone"
            if reason is None:
                firing.append(row)
                continue
            self.metrics.timer_pushes.labels("skipped").inc()
            late = lateness > self.cfg.late_after_ms
            skipped.append((row["id"], "skipped", max(0, lateness), late, None, reason, None))
        return skipped, firing

    def _fired(
        self, rows: list[asyncpg.Record], due: int, published: list[Published]
    ) -> list[tuple[Any, ...]]:
        """The outcomes of the rows just published for one due time."""
        outcomes: list[tuple[Any, ...]] = []
        now_ms = int(time.time() * 1000)
        for row, pub in zip(rows, published, strict=True):
            # The frame's ts is Redis time at publish; a replay (fresh=False) has no new frame.
            # fired_at is when the frame went out (not the transaction's start, which the
            # look-ahead puts before the due time).
            fired_ms = int(orjson.loads(pub.frame)["ts"]) if pub.fresh else now_ms
            lateness = fired_ms - due
            self.metrics.timer_lateness.observe(max(0, lateness) / 1000)
            self.metrics.timer_pushes.labels("fired").inc()
            late = lateness > self.cfg.late_after_ms
            outcomes.append((row["id"], "fired", max(0, lateness), late, pub.seq, None, fired_ms))
        return outcomes

    @staticmethod
    def _push(
        row: asyncpg.Record, due: int, experiments: dict[int, dict[str, Any]] | None = None
    ) -> PublishItem:
        goods = {
            "id": row["goods_id"], "title": row["title"], "price_fen": row["price_fen"],
            "stock": row["stock"], "images": row["images"],
        }  # fmt: skip
        body = goods_push_body(goods, row["show_seconds"], schedule_id=row["id"], due_ms=due)
        exp = (experiments or {}).get(row["experiment_id"] or 0)
        if exp is not None and row["creatives"] is not None:
            body = variant_push_body(body, exp, row["creatives"])
        return PublishItem(
            row["room_id"],
            body,
            state_op="set",
            state_field="bubble",
            idempotency_key=f"sched:{row['id']}:{row['version']}",
        )
