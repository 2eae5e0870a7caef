"""The background task that auto-cancels unpaid orders when their payment window closes.

It sleeps until the earliest deadline (not a fixed poll), capped by
``orders.reaper_max_sleep_seconds`` so orders created on other nodes are swept too; creating
an order on this node wakes it (:meth:`OrderReaper.poke`) in case that order is now the
earliest. Several nodes may run it at once: ``expire_due`` uses ``FOR UPDATE SKIP LOCKED``.

With a WeChat Pay client, each sweep first asks WeChat Pay about due orders that have a prepay
(:mod:`commerce.paychecks`: a late-notified payment is applied, not cancelled; the WeChat order
is closed before the order is cancelled), closes the WeChat orders of orders cancelled by any
path, and queries prepays older than ``wechatpay.stale_prepay_seconds``.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from livecommerce.aio import check_cancelled, wait_event
from livecommerce.commerce import orders, paychecks
from livecommerce.commerce.payclient import WechatPayClient
from livecommerce.config import OrdersConfig, WechatPayConfig

log = logging.getLogger("livecommerce.reaper")
ERROR_RETRY_SECONDS = 2.0
MIN_SLEEP_SECONDS = 0.05


class OrderReaper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cfg: OrdersConfig,
        client: WechatPayClient | None = None,
        pay_cfg: WechatPayConfig | None = None,
    ) -> None:
        self._pool = pool
        self._cfg = cfg
        self._client = client
        self._pay_cfg = pay_cfg or WechatPayConfig()
        self._wake = asyncio.Event()

    @property
    def _grace(self) -> float | None:
        """How long past its deadline a prepaid order waits for WeChat Pay to answer."""
        return None if self._client is None else self._pay_cfg.stale_prepay_seconds

    async def check_payments(self) -> None:
        """Query-before-cancel of due prepaid orders, close-on-cancel, stale prepay queries."""
        if self._client is None:
            return
        batch, pay = self._cfg.reaper_batch_size, self._pay_cfg
        settled = await paychecks.settle_due(
            self._pool, self._client, batch=batch, retry_seconds=pay.query_retry_seconds
        )
        if settled["paid"] or settled["cancelled"]:
            log.info("due prepaid orders: %s", settled)
        await paychecks.close_cancelled(self._pool, self._client, batch=batch)
        await paychecks.query_stale(
            self._pool, self._client, batch=batch, stale_seconds=pay.stale_prepay_seconds
        )

    def poke(self) -> None:
        """A new deadline exists: re-check how long to sleep."""
        self._wake.set()

    async def sweep(self) -> float | None:
        """Cancel everything due; the seconds until the next deadline (None: nothing pending)."""
        await self.check_payments()
        async with self._pool.acquire() as conn:
            while True:
                check_cancelled()
                cancelled = await orders.expire_due(
                    conn, self._cfg.reaper_batch_size, prepaid_grace_seconds=self._grace
                )
                if cancelled:
                    log.info("auto-cancelled %d unpaid orders", len(cancelled))
                if len(cancelled) < self._cfg.reaper_batch_size:
                    break
            return await orders.seconds_to_next_deadline(conn, self._pay_cfg.query_retry_seconds)

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
