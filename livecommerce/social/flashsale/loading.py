"""Loading a sale into Redis: its keys rebuilt from PostgreSQL when they are missing (new sale,
Redis restart or flush, expiry after the end); the first node to load wins.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from livecommerce.errors import NotFound
from livecommerce.social.flashsale.stock import FlashStock

log = logging.getLogger("livecommerce.flashsale")


async def reconcile(pool: asyncpg.Pool, stock: FlashStock, sale_id: int) -> bool:
    """Rebuild the sale's Redis keys from PostgreSQL if they are missing; True if loaded now.

    Concurrent calls for one sale on this node share one rebuild (single flight); a caller that
    is cancelled does not cancel it for the others.
    """
    task = stock.reconciling.get(sale_id)
    if task is None:
        task = asyncio.create_task(
            _reconcile(pool, stock, sale_id), name=f"flash-reconcile-{sale_id}"
        )
        stock.reconciling[sale_id] = task

        def done(t: asyncio.Task[bool]) -> None:
            stock.reconciling.pop(sale_id, None)
            if not t.cancelled():
                t.exception()  # retrieved: every waiter may have gone

        task.add_done_callback(done)
    return await asyncio.shield(task)


async def _reconcile(pool: asyncpg.Pool, stock: FlashStock, sale_id: int) -> bool:
    """One consistent snapshot (REPEATABLE READ) of the sale's sold count, buyers and live
    claims; the load script applies it only if no other node loaded first.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        sale = await conn.fetchrow(
            """SELECT id, stock, sold, per_user_limit, starts_at, ends_at
               FROM flash_sales WHERE id = $1""",
            sale_id,
        )
        if sale is None:
            raise NotFound("no such flash sale", code="not_found")
        buyers = await conn.fetch(
            "SELECT user_id, quantity FROM flash_sale_buyers WHERE sale_id = $1 AND quantity > 0",
            sale_id,
        )
        claims = await conn.fetch(
            "SELECT claim, user_id, quantity FROM flash_sale_orders WHERE sale_id = $1 AND holding",
            sale_id,
        )
    loaded = await stock.load(sale, list(buyers), list(claims))
    if loaded:
        log.info("flash sale %d: Redis stock rebuilt from PostgreSQL", sale_id)
    return loaded
