"""The social background task of a node: order events, expired groups, success messages,
expired points lots.

It LISTENs on ``lc_order_events`` (a dedicated connection opened by the cleanup context) and
is woken by the trigger's NOTIFY and by :meth:`SocialWorker.poke`; otherwise it sleeps until
the earliest group deadline, notification retry or lot expiry, capped by
``groups.worker_max_sleep_seconds`` (which also covers a lost LISTEN connection). Every
step is safe with any number of nodes running it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from livecommerce.aio import check_cancelled, wait_event
from livecommerce.config import Settings
from livecommerce.social import events, flashsale, groups, offers, points

log = logging.getLogger("livecommerce.social.worker")
ERROR_RETRY_SECONDS = 2.0
MIN_SLEEP_SECONDS = 0.05


class SocialWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        deps: events.Deps,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._deps = deps
        self._wake = asyncio.Event()

    @property
    def deps(self) -> events.Deps:
        """What order events are applied with (the payment notification applies its own)."""
        return self._deps

    def poke(self, *_: Any) -> None:
        self._wake.set()

    async def step(self) -> float | None:
        """One pass over every job; seconds until the next known deadline (None: none)."""
        cfg = self._settings.groups
        await events.drain(self._pool, self._deps, cfg.worker_batch_size)
        while True:
            check_cancelled()
            failed = await groups.expire_due(self._pool, cfg.worker_batch_size)
            if failed and self._deps.offers_changed is not None:
                await self._deps.offers_changed(await offers.offers_of_groups(self._pool, failed))
            if len(failed) < cfg.worker_batch_size:
                break
        await events.drain(self._pool, self._deps, cfg.worker_batch_size)  # refunds just made
        await points.expire_due(self._pool, self._settings.points, cfg.worker_batch_size)
        try:
            await flashsale.sweep_stale_claims(self._pool, self._deps.stock)
        except RedisError as exc:  # Redis down: nothing to give back to; next pass retries
            log.warning("flash-sale claim sweep skipped (%s)", type(exc).__name__)
        waits = [
            await groups.seconds_to_next_deadline(self._pool),
            await points.seconds_to_next_expiry(self._pool),
        ]
        known = [w for w in waits if w is not None]
        return min(known) if known else None

    async def run(self) -> None:
        while True:
            check_cancelled()
            self._wake.clear()  # before the pass reads deadlines: a poke meanwhile is kept
            try:
                delay = await self.step()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("social worker pass failed (%s); retrying", type(exc).__name__)
                delay = ERROR_RETRY_SECONDS
            cap = self._settings.groups.worker_max_sleep_seconds
            delay = cap if delay is None else min(max(delay, MIN_SLEEP_SECONDS), cap)
            await wait_event(self._wake, delay)

    async def listen(self) -> asyncpg.Connection | None:
        """A dedicated connection LISTENing for order events (None: could not; the capped
        sleep still picks events up). The caller closes it."""
        try:
            conn: asyncpg.Connection = await asyncpg.connect(self._settings.database.url)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("social worker: LISTEN failed (%s); polling", type(exc).__name__)
            return None
        await conn.add_listener(events.CHANNEL, self.poke)
        return conn
