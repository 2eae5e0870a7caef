"""Order moves the social rules need beyond the commerce core: system refunds and cancels.

Both are conditional UPDATEs (``WHERE status = <from>``): a 0-row update means "not in that
state any more" and changes nothing, so a repeated or racing call is harmless. Lock order is
order row, then goods row, like the commerce core.

A refund moves a paid order to ``refunded``, gives its stock back and marks its payment
``refund_required`` — the record the money-back step works from (the WeChat refund API call
itself is not part of this codebase yet).
"""

from __future__ import annotations

import asyncpg


async def refund_paid_order(conn: asyncpg.Connection, order_id: int, reason: str) -> bool:
    """paid -> refunded (stock released, payment marked refund_required); True if moved."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE orders SET status = 'refunded', refunded_at = now(), cancel_reason = $2,
                      stock_held = false, updated_at = now()
               WHERE id = $1 AND status = 'paid'
               RETURNING goods_id, quantity, transaction_id""",
            order_id,
            reason,
        )
        if row is None:
            return False
        await conn.execute(
            "UPDATE goods SET stock = stock + $2 WHERE id = $1", row["goods_id"], row["quantity"]
        )
        await conn.execute(
            """UPDATE payments SET outcome = 'refund_required'
               WHERE order_id = $1 AND transaction_id = $2""",
            order_id,
            row["transaction_id"],
        )
    return True


async def cancel_pending_order(conn: asyncpg.Connection, order_id: int, reason: str) -> bool:
    """pending_payment -> cancelled by the system (stock released); True if moved."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE orders SET status = 'cancelled', cancel_reason = $2, cancelled_at = now(),
                      stock_held = false, updated_at = now()
               WHERE id = $1 AND status = 'pending_payment' RETURNING goods_id, quantity""",
            order_id,
            reason,
        )
        if row is None:
            return False
        await conn.execute(
            "UPDATE goods SET stock = stock + $2 WHERE id = $1", row["goods_id"], row["quantity"]
        )
    return True
