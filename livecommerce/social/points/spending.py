"""Spending points on an order: the discount they buy (fen), the debit, and giving the spent
points back when the order is cancelled or refunded (and taking them again when a closed
refund sends the order back).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from livecommerce.config import PointsConfig
from livecommerce.errors import ValidationError
from livecommerce.social.points import ledger
from livecommerce.social.points.ledger import now


async def spend(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    points: int,
    order_id: int,
    at: datetime | None = None,
) -> None:
    """Spend points on an order (call inside the order's transaction: they roll back together).

    Raises:
        Conflict: ``insufficient_points``.
    """
    await ledger.debit(conn, cfg, user_id, "spend", points, f"spend:order:{order_id}",
                       at or now(), order_id=order_id)  # fmt: skip


async def restore_spend(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """The order was cancelled or refunded: give back the points it spent (once), each part
    with the expiry of the lot it came from; parts whose lot has expired meanwhile are not
    restored. Returns the points restored.

    Restores and retakes (:func:`retake_spend_restore`, when a full refund was closed and the
    order went back) alternate: after a retake, the next full refund gives back what that
    retake took, from the lots it took them from."""
    at = at or now()
    restores, retakes, last_retake = await _spend_restores(conn, user_id, order_id)
    if restores > retakes:
        return 0  # restored, and not taken again since
    rows = await conn.fetch(
        """SELECT d.amount, l.expires_at FROM points_entries e
           JOIN points_debits d ON d.entry_id = e.id JOIN points_lots l ON l.id = d.lot_id
           WHERE e.user_id = $1 AND ($3::bigint IS NULL AND e.idempotency_key = $2
                                     OR e.id = $3) ORDER BY l.expires_at""",
        user_id,
        f"spend:order:{order_id}",
        last_retake,
    )
    if not rows:
        return 0
    balance = await ledger.open_account(conn, cfg, user_id, at)
    key = f"spend_restore:order:{order_id}" + (f":{restores + 1}" if restores else "")
    if await ledger.seen(conn, user_id, key):
        return 0
    parts = [(r["amount"], r["expires_at"]) for r in rows if r["expires_at"] > at]
    total: int = sum(p[0] for p in parts)
    entry_id = await ledger.entry(conn, cfg, user_id, "spend_restore", total, balance + total,
                                  key, at, order_id)  # fmt: skip
    if entry_id is None:
        return 0
    for amount, expires_at in parts:
        await ledger.add_lot(conn, user_id, entry_id, amount, expires_at)
    await ledger.set_balance(conn, user_id, balance + total)
    return total


async def _spend_restores(
    conn: asyncpg.Connection, user_id: int, order_id: int
) -> tuple[int, int, int | None]:
    """(spend restores, spend-restore retakes, the latest retake's entry id) of an order."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE kind = 'spend_restore') AS restores,
                  count(*) FILTER (WHERE kind = 'spend_restore_reversal') AS retakes,
                  max(id) FILTER (WHERE kind = 'spend_restore_reversal') AS last_retake
           FROM points_entries WHERE user_id = $1 AND order_id = $2
             AND kind IN ('spend_restore', 'spend_restore_reversal')""",
        user_id,
        order_id,
    )
    return int(row["restores"]), int(row["retakes"]), row["last_retake"]


async def retake_spend_restore(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """The order's full refund was closed by WeChat Pay and the order went back to paid /
    shipped / completed: take again the points spent on it that the refund had restored (its
    discount stands again). Once per restore; points the buyer has already used are recorded
    as ``shortfall`` and not owed later (like a purchase reversal's). Returns the points taken."""
    at = at or now()
    restores, retakes, _ = await _spend_restores(conn, user_id, order_id)
    if restores <= retakes:
        return 0
    restored = await conn.fetchval(
        """SELECT delta FROM points_entries WHERE user_id = $1 AND order_id = $2
             AND kind = 'spend_restore' ORDER BY id DESC LIMIT 1""",
        user_id,
        order_id,
    )
    if not restored or restored <= 0:
        return 0
    taken = await ledger.debit(
        conn, cfg, user_id, "spend_restore_reversal", restored,
        f"spend_restore_reversal:order:{order_id}:{restores}", at, order_id=order_id,
        partial=True,
    )  # fmt: skip
    return taken or 0


def discount_for(cfg: PointsConfig, points: int, order_total_fen: int) -> int:
    """The fen ``points`` take off an order of ``order_total_fen``.

    Raises:
        ValidationError: ``points`` worth more than ``max_discount_percent`` of the total.
    """
    discount = points * cfg.fen_per_point
    cap = order_total_fen * cfg.max_discount_percent // 100
    if discount > cap:
        raise ValidationError(
            "points", f"at most {cap // cfg.fen_per_point} points can be used on this order"
        )
    return discount
