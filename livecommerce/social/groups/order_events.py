"""A group's moves on order events, called by the event worker inside the event's transaction.

A payment is counted under the group's row lock (the one that fills the group succeeds it and
queues the success notices), a cancel frees the seat, a refund or a closed refund marks the
member.
"""

from __future__ import annotations

import asyncpg

from livecommerce.notify import outbox
from livecommerce.social.groups.failure import fail_group
from livecommerce.social.refunds import refund_paid_order


async def _member(conn: asyncpg.Connection, order_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT group_id, user_id, status FROM group_members WHERE order_id = $1", order_id
    )
    return row


async def on_paid(conn: asyncpg.Connection, order_id: int, old_status: str) -> str | None:
    """A group order was paid: count it (maybe succeeding the group) or refund it.

    Returns what happened (None: not a group order)."""
    m = await _member(conn, order_id)
    if m is None:
        return None
    g = await conn.fetchrow(
        """SELECT g.status, g.size, g.paid, g.expires_at <= now() AS expired, o.fill_seconds
           FROM groups g JOIN group_offers o ON o.id = g.offer_id WHERE g.id = $1
           FOR UPDATE OF g""",
        m["group_id"],
    )
    if g["status"] == "open" and g["expired"]:
        await fail_group(conn, m["group_id"])  # past its time: fails now, this order refunded
        return "refunded"
    if (
        old_status != "pending_payment"
        or m["status"] != "pending"
        or (g["status"] not in ("pending", "open"))
    ):
        # A late payment (its order had been cancelled and its seat freed) or a closed group.
        await refund_paid_order(conn, order_id, "group_closed")
        await conn.execute(
            "UPDATE group_members SET status = 'refunded' WHERE order_id = $1 AND status <> 'paid'",
            order_id,
        )
        return "refunded"
    await conn.execute("UPDATE group_members SET status = 'paid' WHERE order_id = $1", order_id)
    if g["status"] == "pending":  # the leader paid: the group opens and its clock starts
        await conn.execute(
            """UPDATE groups SET status = 'open', paid = 1,
                      expires_at = now() + make_interval(secs => $2::float8)
               WHERE id = $1""",
            m["group_id"],
            float(g["fill_seconds"]),
        )
        return "opened"
    status = await conn.fetchval(
        """UPDATE groups SET paid = paid + 1,
                  status = CASE WHEN paid + 1 = size THEN 'succeeded' ELSE status END,
                  finished_at = CASE WHEN paid + 1 = size THEN now() END
           WHERE id = $1 RETURNING status""",
        m["group_id"],
    )
    if status == "succeeded":
        # Exactly once: this transaction made the flip, under the group's lock. Each member gets
        # one notification (socket notice + subscribe message) through the shared outbox.
        info = await conn.fetchrow(
            """SELECT gd.title, o.group_price_fen FROM groups g
               JOIN group_offers o ON o.id = g.offer_id JOIN goods gd ON gd.id = o.goods_id
               WHERE g.id = $1""",
            m["group_id"],
        )
        members = await conn.fetch(
            "SELECT user_id FROM group_members WHERE group_id = $1 AND status = 'paid'",
            m["group_id"],
        )
        payload = {
            "group_id": m["group_id"], "size": g["size"], "title": info["title"],
            "group_price_fen": info["group_price_fen"],
        }  # fmt: skip
        for member in members:
            await outbox.enqueue(
                conn, member["user_id"], "group_succeeded",
                f"group:{m['group_id']}:succeeded:{member['user_id']}", payload,
            )  # fmt: skip
        return "succeeded"
    return "counted"


async def on_cancelled(conn: asyncpg.Connection, order_id: int) -> None:
    """An unpaid group order was cancelled: free its seat (the leader's: cancel the group)."""
    m = await _member(conn, order_id)
    if m is None or m["status"] != "pending":
        return
    await conn.execute("SELECT 1 FROM groups WHERE id = $1 FOR UPDATE", m["group_id"])
    await conn.execute(
        "UPDATE group_members SET status = 'cancelled' WHERE order_id = $1 AND status = 'pending'",
        order_id,
    )
    await conn.execute(
        """UPDATE groups SET seats = seats - 1,
                  status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,
                  finished_at = CASE WHEN status = 'pending' THEN now() ELSE finished_at END
           WHERE id = $1""",
        m["group_id"],
    )


async def on_refunded(conn: asyncpg.Connection, order_id: int) -> None:
    """A group order was refunded (after-sale or by a failed group): mark the member."""
    await conn.execute(
        "UPDATE group_members SET status = 'refunded' WHERE order_id = $1 AND status = 'paid'",
        order_id,
    )


async def on_refund_closed(conn: asyncpg.Connection, order_id: int) -> None:
    """The refund of a group order was closed and the order is live again (not refunded): the
    member is paid again, unless its group failed (then the refund is owed anyway)."""
    await conn.execute(
        """UPDATE group_members m SET status = 'paid' FROM groups g
           WHERE m.order_id = $1 AND m.status = 'refunded' AND g.id = m.group_id
             AND g.status <> 'failed'""",
        order_id,
    )
