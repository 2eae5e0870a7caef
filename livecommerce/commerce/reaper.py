"""The background task that auto-cancels unpaid orders when their payment window closes.

It sleeps until the earliest deadline (not a fixed poll), capped by
``orders.reaper_max_sleep_seconds`` so orders created on other nodes are swept too; creating
an order on this node wakes it (:meth:`OrderReaper.poke`) in case that order is now the
earliest. Several nodes may run it at once: ``expire_due`` uses ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from livecommerce.aio import check_cancelled, wait_event
from livecommerce.commerce import orders
from livecommerce.config import OrdersConfig

log = logging.getLogger("livecommerce.reaper")
ERROR_RETRY_SECONDS = 2.0
MIN_SLEEP_SECONDS = 0.05


class OrderReaper:
    def __init__(self, pool: asyncpg.Pool, cfg: OrdersConfig) -> None:
        self._pool = pool
        self._cfg = cfg
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """A new deadline exists: re-check how long to sleep."""
        self._wake.set()

    async def sweep(self) -> float | None:
        """Cancel everything due; the seconds until the next deadline (None: nothing pending)."""
        async with self._pool.acquire() as conn:
            while True:
                check_cancelled()
                cancelled = await orders.expire_due(conn, self._cfg.reaper_batch_size)
                if cancelled:
                    log.info("auto-cancelled %d unpaid orders", len(cancelled))
                if len(cancelled) < self._cfg.reaper_batch_size:
                    break
            return await orders.seconds_to_next_deadline(conn)

    async def run(self) -> None:
        while True:
            check_cancelled()
            # Cleared before the sweep reads deadlines, so a poke during the sweep is not lost.
            self._wake.clear()
            try:
                delay = await self.sweep()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("order sweep failed (%s); retrying", type(exc).__name__)
                delay = ERROR_RETRY_SECONDS
            cap = self._cfg.reaper_max_sleep_seconds
            delay = cap if delay is None else min(max(delay, MIN_SLEEP_SECONDS), cap)
            await wait_event(self._wake, delay)
