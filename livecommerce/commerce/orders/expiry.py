"""Auto-cancel: the reaper's sweep of unpaid orders past their deadline, and the next deadline."""

from __future__ import annotations

import asyncpg


async def expire_due(
    conn: asyncpg.Connection, batch: int, *, prepaid_grace_seconds: float | None = None
) -> list[int]:
    """Cancel up to ``batch`` unpaid orders past their deadline and release their stock.

    With ``prepaid_grace_seconds``, an order that has a WeChat Pay prepay is left alone until
    that long after its deadline: the reaper first asks WeChat Pay about it
    (:mod:`commerce.paychecks`), and cancels it here only when WeChat could not be asked.

    ``FOR UPDATE SKIP LOCKED`` lets several nodes sweep at once without waiting on each other
    or cancelling an order twice; an order locked by an arriving payment is skipped (the payment
    decides it). Goods are restocked in id order so two sweepers cannot deadlock.
    """
    async with conn.transaction():
        rows = await conn.fetch(
            """WITH due AS (
                   SELECT id FROM orders
                   WHERE status = 'pending_payment' AND expires_at <= now()
                     AND ($2::float8 IS NULL OR prepay_id IS NULL
                          OR expires_at <= now() - make_interval(secs => $2::float8))
                   ORDER BY expires_at LIMIT $1
                   FOR UPDATE SKIP LOCKED)
               UPDATE orders o SET status = 'cancelled', cancel_reason = 'payment_timeout',
                      cancelled_at = now(), stock_held = false, updated_at = now()
               FROM due WHERE o.id = due.id
               RETURNING o.id, o.goods_id, o.quantity""",
            batch,
            prepaid_grace_seconds,
        )
        release: dict[int, int] = {}
        for r in rows:
            release[r["goods_id"]] = release.get(r["goods_id"], 0) + r["quantity"]
        for goods_id in sorted(release):
            await conn.execute(
                "UPDATE goods SET stock = stock + $2 WHERE id = $1", goods_id, release[goods_id]
            )
    return [r["id"] for r in rows]


async def seconds_to_next_deadline(
    conn: asyncpg.Connection, retry_seconds: float = 0.0
) -> float | None:
    """Seconds until the earliest unpaid order expires (<= 0: due now); None if none pending.

    An order whose WeChat Pay query failed (``pay_checked_at``) is next due ``retry_seconds``
    after that check, not at its (past) deadline: the reaper does not spin on it.
    """
    value = await conn.fetchval(
        """SELECT EXTRACT(EPOCH FROM min(
                      CASE WHEN pay_checked_at IS NULL THEN expires_at
                           ELSE GREATEST(expires_at,
                                         pay_checked_at + make_interval(secs => $1::float8))
                      END) - now())::float8
           FROM orders WHERE status = 'pending_payment'""",
        float(retry_seconds),
    )
    return None if value is None else float(value)
