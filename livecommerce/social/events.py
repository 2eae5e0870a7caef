"""Applying order events (the ``order_events`` outbox) to points, flash sales and groups.

A trigger on ``orders`` (migration 0005) records every move to paid, cancelled or refunded in
the transaction that makes it — whichever code path made it — and NOTIFYs
``lc_order_events``. :func:`process` claims events with ``FOR UPDATE SKIP LOCKED``, taking
for each order only its oldest event (so one order's events apply in order even with several
nodes), applies each in a savepoint and deletes it in the same transaction: an event's effect
commits exactly once. The effects are idempotent besides (ledger keys, conditional updates,
claims returned at most once), so a retried event changes nothing twice.

* paid: purchase points credited; a group member counted (or refunded); a flash-sale order
  paid after it had been cancelled (its unit went back on sale) is refunded.
* cancelled: flash-sale units returned; the group seat freed; points spent restored.
* refunded: flash-sale units returned; the group member marked; what is left of the purchase
  credit reversed and the points spent restored.
* refund (a refund row was created, migration 0019; partial ones too): the purchase credit
  reversed in proportion to what has been refunded of the order's payment.
* refund_closed (WeChat Pay closed a refund: the buyer was not paid back, migration 0024): the
  purchase points it had reversed given back (once; the proportion is recomputed without it);
  if its order went back from refunded, the points spent on it that the full refund restored
  are taken again and its group member is paid again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from livecommerce.aio import check_cancelled
from livecommerce.config import Settings
from livecommerce.social import flashsale, groups, offers, points
from livecommerce.social.flash_orders import is_flash_order
from livecommerce.social.flashsale import FlashStock
from livecommerce.social.refunds import refund_paid_order

log = logging.getLogger("livecommerce.social.events")
CHANNEL = "lc_order_events"


@dataclass(frozen=True, slots=True)
class Deps:
    settings: Settings
    stock: FlashStock
    # Told the group offers whose groups changed (after the commit): their pushed bubbles'
    # progress frames (offers.announce). None: nobody is told.
    offers_changed: Callable[[list[int]], Awaitable[object]] | None = None


async def tell_offers_changed(pool: asyncpg.Pool, deps: Deps, order_ids: list[int]) -> None:
    """Call ``deps.offers_changed`` with the group offers of these orders (if any)."""
    if deps.offers_changed is None or not order_ids:
        return
    try:
        changed = await offers.offers_of_orders(pool, order_ids)
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("group offers of applied events unknown (%s)", type(exc).__name__)
        return
    if changed:
        await deps.offers_changed(changed)


async def apply(conn: asyncpg.Connection, deps: Deps, ev: asyncpg.Record) -> None:
    """Apply one event (inside the caller's transaction)."""
    order_id, user_id, old, new = ev["order_id"], ev["user_id"], ev["old_status"], ev["new_status"]
    cfg = deps.settings.points
    if new == "paid":
        total = await conn.fetchval("SELECT total_fen FROM orders WHERE id = $1", order_id)
        await points.credit_purchase(conn, cfg, user_id, order_id, total)
        grouped = await groups.on_paid(conn, order_id, old)
        if grouped is None and old == "cancelled" and await is_flash_order(conn, order_id):
            await refund_paid_order(conn, order_id, "flash_sale_released")
    elif new == "cancelled":
        await flashsale.release(conn, deps.stock, order_id)
        await groups.on_cancelled(conn, order_id)
        await points.restore_spend(conn, cfg, user_id, order_id)
    elif new == "refunded":
        await flashsale.release(conn, deps.stock, order_id)
        await groups.on_refunded(conn, order_id)
        await points.reverse_purchase(conn, cfg, user_id, order_id)
        await points.restore_spend(conn, cfg, user_id, order_id)
    elif new == "refund" and ev["refund_id"] is not None:  # a refund row (migration 0019)
        await points.reverse_for_refund(conn, cfg, user_id, order_id, ev["refund_id"])
    elif new == "refund_closed" and ev["refund_id"] is not None:  # migration 0024
        await points.restore_for_closed_refund(conn, cfg, user_id, order_id, ev["refund_id"])
        status = await conn.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
        if old == "refunded" and status != "refunded":  # the close sent it back (refunds.close)
            await points.retake_spend_restore(conn, cfg, user_id, order_id)
            await groups.on_refund_closed(conn, order_id)


async def process(
    pool: asyncpg.Pool, deps: Deps, batch: int, *, order_id: int | None = None
) -> int:
    """Apply up to ``batch`` pending events; the number applied. Safe on several nodes.

    With ``order_id``, only that order's events, and an event another node is applying is
    waited for (not skipped): when this returns, the order's effects are committed — the
    payment notification uses it so a ``GET`` after the answer sees them (read-your-payment).
    """
    lock = "FOR UPDATE" if order_id is not None else "FOR UPDATE SKIP LOCKED"
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT e.id, e.order_id, e.user_id, e.old_status, e.new_status, e.refund_id
               FROM order_events e
               WHERE NOT EXISTS (SELECT 1 FROM order_events p
                                 WHERE p.order_id = e.order_id AND p.id < e.id)
                 AND ($2::bigint IS NULL OR e.order_id = $2)
               ORDER BY e.id LIMIT $1 {lock}""",
            batch,
            order_id,
        )
        done = 0
        applied: list[int] = []
        for ev in rows:
            try:
                async with conn.transaction():
                    await apply(conn, deps, ev)
                    await conn.execute("DELETE FROM order_events WHERE id = $1", ev["id"])
                done += 1
                applied.append(ev["order_id"])
            except (asyncpg.PostgresError, ValueError) as exc:
                # Left in place and retried on the next pass; later events of the same order
                # wait behind it (in order), other orders go on.
                log.error("order event %d (order %d -> %s) failed: %r", ev["id"],
                          ev["order_id"], ev["new_status"], exc)  # fmt: skip
    await tell_offers_changed(pool, deps, applied)
    return done


async def pending(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM order_events"))


async def drain(pool: asyncpg.Pool, deps: Deps, batch: int = 200) -> int:
    """Apply events until none is claimable (tests and shutdown use it)."""
    total = 0
    while True:
        check_cancelled()
        n = await process(pool, deps, batch)
        total += n
        if n == 0:
            return total
