"""Whether an order was bought in a flash sale: a table lookup shared by the sale and refunds.

Its own module so that ``commerce/refunds/`` (``settling``) can ask without importing
``social/flashsale/`` (which imports the orders service, which imports refunds).
"""

from __future__ import annotations

import asyncpg


async def is_flash_order(conn: asyncpg.Connection, order_id: int) -> bool:
    """The order ``order_id`` has a ``flash_sale_orders`` row (its refund releases the unit)."""
    return bool(
        await conn.fetchval("SELECT 1 FROM flash_sale_orders WHERE order_id = $1", order_id)
    )
