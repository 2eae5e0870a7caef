"""Failing a group that did not fill: pending orders cancelled, paid ones refunded, and one
``group_failed`` notice per member saying which, in the transaction that failed the group."""

from __future__ import annotations

import asyncpg

from livecommerce.notify import outbox
from livecommerce.social.refunds import cancel_pending_order, refund_paid_order


async def fail_group(conn: asyncpg.Connection, group_id: int) -> bool:
    """An open group that did not fill: failed; pending orders cancelled, paid ones refunded.

    Call with the group row locked (or let the conditional UPDATE decide). True if failed now.
    """
    failed = await conn.fetchval(
        """UPDATE groups SET status = 'failed', finished_at = now()
           WHERE id = $1 AND status = 'open' RETURNING 1""",
        group_id,
    )
    if not failed:
        return False
    members = await conn.fetch(
        """SELECT order_id FROM group_members WHERE group_id = $1
           AND status IN ('pending', 'paid') ORDER BY order_id""",
        group_id,
    )
    for m in members:
        status = "cancelled"
        if not await cancel_pending_order(conn, m["order_id"], "group_failed"):
            # Paid (whether or not its paid event has been applied yet): refund it. Its
            # later paid event finds the group failed and refunds nothing twice.
            await refund_paid_order(conn, m["order_id"], "group_failed")
            now_status = await conn.fetchval(
                "SELECT status FROM orders WHERE id = $1", m["order_id"]
            )
            status = "refunded" if now_status == "refunded" else "cancelled"
        await conn.execute(
            "UPDATE group_members SET status = $2 WHERE order_id = $1", m["order_id"], status
        )
        await _failed_notice(conn, group_id, m["order_id"], status)
    return True


async def _failed_notice(
    conn: asyncpg.Connection, group_id: int, order_id: int, outcome: str
) -> None:
    """Tell a member their group failed and what became of their order (``refunded``: the
    refund has been requested, ``refund_fen``; ``cancelled``: it was never paid) — once per
    member, in the transaction that failed the group (socket notice + subscribe message)."""
    row = await conn.fetchrow(
        """SELECT o.user_id, o.title, o.total_fen, g.size, f.group_price_fen
           FROM orders o JOIN groups g ON g.id = $1 JOIN group_offers f ON f.id = g.offer_id
           WHERE o.id = $2""",
        group_id,
        order_id,
    )
    refunded = outcome == "refunded"
    await outbox.enqueue(
        conn, row["user_id"], "group_failed", f"group:{group_id}:failed:{row['user_id']}",
        {
            "group_id": group_id, "order_id": order_id, "title": row["title"],
            "size": row["size"], "group_price_fen": row["group_price_fen"], "outcome": outcome,
            "refund_fen": row["total_fen"] if refunded else 0,
            "status": "拼团失败",
        },
    )  # fmt: skip
