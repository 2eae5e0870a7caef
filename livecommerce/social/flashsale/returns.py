"""Stock given back: the units of an order that no longer holds them (cancelled, timed out
unpaid, refunded), and claims taken in Redis whose purchase never reached PostgreSQL.
"""

from __future__ import annotations

import logging

import asyncpg

from livecommerce.social.flashsale.stock import FlashStock

log = logging.getLogger("livecommerce.flashsale")


async def sweep_stale_claims(pool: asyncpg.Pool, stock: FlashStock, batch: int = 1000) -> int:
    """Give back units taken in Redis whose purchase never reached PostgreSQL; how many.

    A node that dies between the Redis take and its PostgreSQL write strands the unit (an
    undersell, never an oversell). Claims older than ``flash_sale.stale_claim_seconds`` with
    no ``flash_sale_orders`` row are returned; those with one are confirmed. Safe on every node
    at once (returns are idempotent). Should a request still commit after its claim was given
    back, PostgreSQL's own guard (``sold + q <= stock``) refuses the unit to whoever took it
    in Redis meanwhile, so it is still never oversold.
    """
    grace = stock.cfg.stale_claim_seconds
    sales = await pool.fetch(
        "SELECT id FROM flash_sales WHERE ends_at > now() - make_interval(secs => $1)",
        float(grace) + 60.0,
    )
    returned = 0
    for sale in sales:
        sale_id = sale["id"]
        claims = await stock.unconfirmed(sale_id, grace * 1000, batch)
        if not claims:
            continue
        rows = await pool.fetch(
            "SELECT claim FROM flash_sale_orders WHERE sale_id = $1 AND claim = ANY($2::text[])",
            sale_id,
            claims,
        )
        persisted = {r["claim"] for r in rows}
        await stock.confirm(sale_id, sorted(persisted))
        for claim in claims:
            if claim not in persisted and await stock.give_back(sale_id, claim) >= 0:
                returned += 1
                log.warning("flash sale %d: gave back stale claim %s (no order)", sale_id, claim)
    return returned


async def release(conn: asyncpg.Connection, stock: FlashStock, order_id: int) -> bool:
    """The order no longer holds its sale units (cancelled, timed out, refunded): give them
    back in PostgreSQL and Redis. Once per order (``holding`` flips once); call in the
    event's transaction. True when this call released."""
    row = await conn.fetchrow(
        """UPDATE flash_sale_orders SET holding = false WHERE order_id = $1 AND holding
           RETURNING sale_id, user_id, quantity, claim""",
        order_id,
    )
    if row is None:
        return False
    await conn.execute(
        "UPDATE flash_sales SET sold = sold - $2 WHERE id = $1", row["sale_id"], row["quantity"]
    )
    await conn.execute(
        "UPDATE flash_sale_buyers SET quantity = quantity - $3 WHERE sale_id = $1 AND user_id = $2",
        row["sale_id"],
        row["user_id"],
        row["quantity"],
    )
    # Before commit, and idempotent: if the commit fails the event is retried and the second
    # return is a no-op (the claim is gone).
    await stock.give_back(row["sale_id"], row["claim"])
    return True
