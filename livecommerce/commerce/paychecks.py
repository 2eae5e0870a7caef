"""Asking WeChat Pay instead of waiting for it: query before cancel, close on cancel, stale prepays.

Run by the order reaper on every sweep (several nodes may run them: each order is decided by
conditional UPDATEs and by :func:`payments.apply_transaction`, which is exactly-once per
transaction id, so two nodes checking one order change it once).

* **Query before cancel** (:func:`settle_due`): an unpaid order past its deadline that has a
  prepay is first looked up at WeChat Pay. Paid there (its notification is late or lost) →
  the payment is applied, the order is not cancelled. Not paid → its WeChat order is closed
  (so it can never be paid) and then it is cancelled. WeChat unreachable → tried again
  ``retry_seconds`` later; past ``grace_seconds`` after the deadline the plain sweep cancels
  it anyway (WeChat refuses payment after ``time_expire`` = the deadline, and a payment that
  still arrives takes the late-payment path: stock re-taken or refunded).
* **Close on cancel** (:func:`close_cancelled`): a cancelled order (by the buyer, the reaper,
  a failed group — any path) whose WeChat order is not known closed is closed; if WeChat says
  it was paid meanwhile, the payment is applied (the late-payment rule decides). A buyer's
  cancel closes it before answering (:func:`close_order`), so the ``wx.requestPayment`` the
  buyer still holds cannot pay the cancelled order; the sweep retries a close that failed.
* **Stale prepays** (:func:`query_stale`): an unpaid order whose prepay is older than
  ``wechatpay.stale_prepay_seconds`` is queried (at most once per that age), so a
  notification that never arrives is caught well before the deadline.
"""

from __future__ import annotations

import logging

import asyncpg

from livecommerce.commerce.orders import out_trade_no
from livecommerce.commerce.payclient import OrderPaid, PayError, PayNotFound, WechatPayClient
from livecommerce.commerce.prepay import apply_from_query
from livecommerce.errors import AppError

log = logging.getLogger("livecommerce.paychecks")


async def settle_due(
    pool: asyncpg.Pool, client: WechatPayClient, *, batch: int, retry_seconds: float
) -> dict[str, int]:
    """Query-then-close-then-cancel each due prepaid order; counts by outcome
    (``paid``, ``cancelled``, ``retry``)."""
    ids = await pool.fetch(
        """SELECT id FROM orders
           WHERE status = 'pending_payment' AND expires_at <= now() AND prepay_id IS NOT NULL
             AND (pay_checked_at IS NULL
                  OR pay_checked_at <= now() - make_interval(secs => $2::float8))
           ORDER BY expires_at LIMIT $1""",
        batch,
        float(retry_seconds),
    )
    counts = {"paid": 0, "cancelled": 0, "retry": 0}
    for r in ids:
        counts[await _settle(pool, client, r["id"])] += 1
    return counts


async def _settle(pool: asyncpg.Pool, client: WechatPayClient, order_id: int) -> str:
    try:
        if await apply_from_query(pool, client, order_id) is not None:
            return "paid"
        await client.close_order(out_trade_no(order_id))
    except PayNotFound:
        pass  # WeChat never saw it: nothing to close, nobody can pay it
    except OrderPaid:
        # Paid between our query and the close: apply it (next round if the query fails now).
        await _apply_quietly(pool, client, order_id)
        return "paid"
    except (PayError, AppError) as exc:
        log.warning("WeChat Pay check of due order %d failed (%s); retrying", order_id, exc)
        await pool.execute("UPDATE orders SET pay_checked_at = now() WHERE id = $1", order_id)
        return "retry"
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE orders SET status = 'cancelled', cancel_reason = 'payment_timeout',
                      cancelled_at = now(), stock_held = false, pay_closed_at = now(),
                      updated_at = now()
               WHERE id = $1 AND status = 'pending_payment'
               RETURNING goods_id, quantity""",
            order_id,
        )
        if row is None:
            return "paid"  # a notification applied it meanwhile (or the buyer cancelled)
        await conn.execute(
            "UPDATE goods SET stock = stock + $2 WHERE id = $1", row["goods_id"], row["quantity"]
        )
    return "cancelled"


async def _apply_quietly(pool: asyncpg.Pool, client: WechatPayClient, order_id: int) -> None:
    try:
        await apply_from_query(pool, client, order_id)
    except (PayError, AppError) as exc:
        log.warning("query of paid order %d failed (%s); the notification will apply it",
                    order_id, exc)  # fmt: skip


async def close_cancelled(pool: asyncpg.Pool, client: WechatPayClient, *, batch: int) -> int:
    """Close the WeChat orders of cancelled orders not known closed; the number closed."""
    rows = await pool.fetch(
        """SELECT id FROM orders
           WHERE status = 'cancelled' AND prepay_id IS NOT NULL AND pay_closed_at IS NULL
           ORDER BY id LIMIT $1""",
        batch,
    )
    closed = 0
    for r in rows:
        closed += await close_order(pool, client, r["id"])
    return closed


async def close_order(pool: asyncpg.Pool, client: WechatPayClient, order_id: int) -> bool:
    """Close the WeChat order of one cancelled order; True when closed (or paid meanwhile:
    the payment is applied by the late-payment rule). A failure is logged and left for
    :func:`close_cancelled` to retry."""
    try:
        await client.close_order(out_trade_no(order_id))
    except OrderPaid:
        await _apply_quietly(pool, client, order_id)  # the late-payment rule decides
    except PayError as exc:
        log.warning("closing the WeChat order of %d failed (%s)", order_id, exc)
        return False
    await pool.execute("UPDATE orders SET pay_closed_at = now() WHERE id = $1", order_id)
    return True


async def query_stale(
    pool: asyncpg.Pool, client: WechatPayClient, *, batch: int, stale_seconds: float
) -> int:
    """Query unpaid orders whose prepay is older than ``stale_seconds``; the number found paid."""
    rows = await pool.fetch(
        """UPDATE orders SET pay_checked_at = now()
           WHERE id IN (
               SELECT id FROM orders
               WHERE status = 'pending_payment' AND prepay_id IS NOT NULL
                 AND prepay_at <= now() - make_interval(secs => $2::float8)
                 AND (pay_checked_at IS NULL
                      OR pay_checked_at <= now() - make_interval(secs => $2::float8))
               ORDER BY prepay_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id""",
        batch,
        float(stale_seconds),
    )
    paid = 0
    for r in rows:
        try:
            if await apply_from_query(pool, client, r["id"]) is not None:
                paid += 1
        except PayNotFound:
            continue
        except (PayError, AppError) as exc:
            log.warning("query of stale prepay of order %d failed (%s)", r["id"], exc)
    if paid:
        log.info("found %d paid orders whose notification had not arrived", paid)
    return paid
