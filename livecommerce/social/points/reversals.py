"""Refunds and the purchase credit: reversed when an order is refunded (in full or in part),
given back when WeChat Pay closes a refund.

An order's reversals add up to ``floor(credited x refunded / paid)`` of its purchase credit
(``refunded``: the refunds of the order's own payment that are not ``closed``), never more and
never twice; points already spent are recorded as ``shortfall``, so the balance stays >= 0.
All of it runs under the account lock (:func:`livecommerce.social.points.ledger.open_account`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from livecommerce.config import PointsConfig
from livecommerce.social.points import ledger
from livecommerce.social.points.ledger import now


async def reverse_purchase(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """The order was refunded in full: take back what is left of its purchase credit (once).
    Points already spent cannot be taken: the entry records them as ``shortfall`` and the
    balance stays >= 0. Returns the points taken."""
    return await _reverse_up_to(
        conn, cfg, user_id, order_id, None, f"purchase_reversal:order:{order_id}", at or now()
    )


async def reverse_for_refund(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int, refund_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """A refund of (part of) the order's payment: reverse the purchase credit in proportion.

    The reversals of an order add up to ``floor(credited x refunded / paid)``, ``refunded``
    being the refunds of the order's own payment that are not ``closed``: partial refunds add
    up, a full refund takes back the whole credit, a refund of another transaction of the
    order (a double payment) takes nothing, and nothing is ever taken twice (the key is the
    refund; the sum of earlier reversals, shortfalls included, is subtracted). Returns the
    points taken.
    """
    share = await _refund_share(conn, order_id)
    if share is None:
        return 0
    return await _reverse_up_to(
        conn, cfg, user_id, order_id, share, f"purchase_reversal:refund:{refund_id}", at or now()
    )


async def _refund_share(conn: asyncpg.Connection, order_id: int) -> tuple[int, int] | None:
    """(refunded, paid) of the order's own payment, refunded = its refunds not closed."""
    row = await conn.fetchrow(
        """SELECT p.amount_fen AS paid,
                  (SELECT COALESCE(sum(r.amount_fen), 0)::bigint FROM refunds r
                   WHERE r.transaction_id = o.transaction_id AND r.status <> 'closed') AS refunded
           FROM orders o JOIN payments p ON p.transaction_id = o.transaction_id
           WHERE o.id = $1""",
        order_id,
    )
    if row is None or row["paid"] <= 0:
        return None
    return min(row["refunded"], row["paid"]), row["paid"]


async def _reversed(conn: asyncpg.Connection, user_id: int, order_id: int) -> tuple[int, int]:
    """(reversed, shortfall) of the order's purchase credit, net of what closed refunds gave
    back: reversals count what they took plus their shortfall; a restore counts what it
    credited plus the shortfall it cancelled."""
    row = await conn.fetchrow(
        """SELECT COALESCE(sum(CASE WHEN kind = 'purchase_reversal' THEN shortfall - delta
                                    ELSE -(delta + shortfall) END), 0)::int AS net,
                  COALESCE(sum(CASE WHEN kind = 'purchase_reversal' THEN shortfall
                                    ELSE -shortfall END), 0)::int AS short
           FROM points_entries WHERE user_id = $1 AND order_id = $2
             AND kind IN ('purchase_reversal', 'purchase_restore')""",
        user_id,
        order_id,
    )
    return row["net"], row["short"]


async def restore_for_closed_refund(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int, refund_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """WeChat Pay closed a refund (the buyer was not paid back): give back what the order's
    purchase reversals took beyond ``floor(credited x refunded / paid)`` now that the closed
    refund no longer counts — once (the key is the closed refund; the net of earlier reversals
    and restores is what is compared, so a reversal applied after the close is covered too).

    Shortfall (points the reversals could not take because they were spent) is cancelled
    first, as it cost the buyer nothing; the rest is credited as a new lot expiring when the
    purchase's own points do (``lot_ttl_days`` from now if that has passed). Returns the points
    credited.
    """
    at = at or now()
    share = await _refund_share(conn, order_id)
    if share is None:
        return 0
    # The account lock serializes this with the user's reversals.
    balance = await ledger.open_account(conn, cfg, user_id, at)
    key = f"purchase_restore:refund:{refund_id}"
    if await ledger.seen(conn, user_id, key):
        return 0
    credit = await conn.fetchrow(
        """SELECT e.delta, l.expires_at FROM points_entries e
           LEFT JOIN points_lots l ON l.entry_id = e.id
           WHERE e.user_id = $1 AND e.idempotency_key = $2""",
        user_id,
        ledger.purchase_key(order_id),
    )
    if credit is None or not credit["delta"]:
        return 0
    credited: int = credit["delta"]
    target = min(credited * share[0] // share[1], credited)
    net, short = await _reversed(conn, user_id, order_id)
    give = net - target
    if give <= 0:
        return 0
    cancel = min(give, max(short, 0))
    back: int = give - cancel
    entry_id = await ledger.entry(conn, cfg, user_id, "purchase_restore", back, balance + back,
                                  key, at, order_id, cancel)  # fmt: skip
    if entry_id is None or back == 0:
        return 0
    expires = credit["expires_at"]
    await ledger.add_lot(
        conn,
        user_id,
        entry_id,
        back,
        expires if expires is not None and expires > at else at + timedelta(days=cfg.lot_ttl_days),
    )
    await ledger.set_balance(conn, user_id, balance + back)
    return back


async def _reverse_up_to(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    order_id: int,
    share: tuple[int, int] | None,
    key: str,
    at: datetime,
) -> int:
    """Bring the order's purchase reversals up to ``share`` (refunded, paid) of its credit
    (None: all of it), under the account lock; the points taken."""
    await ledger.open_account(conn, cfg, user_id, at)  # serializes this user's reversals
    credited = await conn.fetchval(
        "SELECT delta FROM points_entries WHERE user_id = $1 AND idempotency_key = $2",
        user_id,
        ledger.purchase_key(order_id),
    )
    if not credited:
        return 0
    target = credited if share is None else credited * share[0] // share[1]
    already, _ = await _reversed(conn, user_id, order_id)
    amount = min(target, credited) - already
    if amount <= 0:
        return 0
    taken = await ledger.debit(
        conn, cfg, user_id, "purchase_reversal", amount, key, at, order_id=order_id, partial=True
    )
    return taken or 0
