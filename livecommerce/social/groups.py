"""Group buying (拼团): offers, groups, members, and their moves on order events.

A buyer opens a group by ordering at the group price (the group is ``pending`` and not
joinable until that order is paid, then ``open`` for the offer's fill time). Others join
through the group id: a join takes a *seat* with one conditional UPDATE
(``seats < size AND status = 'open' AND expires_at > now()``) in the same transaction as the
member row and the order, so a group can never hold more than ``size`` members — pending or
paid. An unpaid member's cancel or timeout frees the seat.

The order-event worker applies payments: under the group's row lock a paid member is counted,
and the payment that makes ``paid = size`` flips the group to ``succeeded`` and — in that same
transaction, exactly once — queues one success notification per member. Open groups past
their time are failed by :func:`expire_due` (``FOR UPDATE SKIP LOCKED``, any number of nodes):
pending orders are cancelled and paid ones refunded, and every member gets one ``group_failed``
notice saying which (queued in that same transaction). A payment that arrives for a group that
is no longer open, or for a member whose seat was freed, is refunded.

Lock order: group row, then order row, then goods row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from livecommerce.commerce import orders
from livecommerce.config import GroupsConfig
from livecommerce.errors import Conflict, NotFound
from livecommerce.notify import outbox
from livecommerce.social.refunds import cancel_pending_order, refund_paid_order

GROUP_STATUSES = ("pending", "open", "succeeded", "failed", "cancelled")
MAX_LIST = 50


class _Replay(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def offer_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "host_id": row["host_id"],
        "goods_id": row["goods_id"],
        "group_price_fen": row["group_price_fen"],
        "size": row["size"],
        "fill_seconds": row["fill_seconds"],
        "active": row["active"],
        "created_at": row["created_at"].isoformat(),
    }


async def create_offer(
    conn: asyncpg.Connection,
    *,
    host_id: int,
    goods_id: int,
    group_price_fen: int,
    size: int,
    fill_seconds: int,
) -> dict[str, Any]:
    """A host offers group buying on its own goods."""
    status = await conn.fetchval(
        "SELECT status FROM goods WHERE id = $1 AND host_id = $2", goods_id, host_id
    )
    if status is None or status == "draft":
        raise NotFound("no such goods", code="goods_not_found")
    row = await conn.fetchrow(
        """INSERT INTO group_offers (host_id, goods_id, group_price_fen, size, fill_seconds)
           VALUES ($1, $2, $3, $4, $5) RETURNING *""",
        host_id,
        goods_id,
        group_price_fen,
        size,
        fill_seconds,
    )
    return offer_json(row)


async def get_group(conn: asyncpg.Connection | asyncpg.Pool, group_id: int) -> dict[str, Any]:
    """A group with its members (nickname, avatar), seats left and seconds left to fill."""
    g = await conn.fetchrow(
        """SELECT g.id, g.offer_id, g.leader_id, g.size, g.status, g.seats, g.paid,
                  g.expires_at, g.finished_at, g.created_at, o.goods_id, o.group_price_fen,
                  greatest(0, EXTRACT(EPOCH FROM g.expires_at - now()))::float8 AS left_s,
                  gd.status AS goods_status
           FROM groups g JOIN group_offers o ON o.id = g.offer_id
           JOIN goods gd ON gd.id = o.goods_id WHERE g.id = $1""",
        group_id,
    )
    # A draft's groups are hidden like its offer (drafts are never public).
    if g is None or g["status"] == "pending" or g["goods_status"] == "draft":
        raise NotFound("no such group", code="group_not_found")
    members = await conn.fetch(
        """SELECT m.user_id, m.status, m.joined_at, u.nickname, u.avatar_url
           FROM group_members m JOIN users u ON u.id = m.user_id
           WHERE m.group_id = $1 AND m.status IN ('pending', 'paid')
           ORDER BY m.joined_at, m.user_id""",
        group_id,
    )
    return {
        "id": g["id"],
        "offer_id": g["offer_id"],
        "goods_id": g["goods_id"],
        "group_price_fen": g["group_price_fen"],
        "leader_id": g["leader_id"],
        "size": g["size"],
        "status": g["status"],
        "paid_members": g["paid"],
        "seats_left": g["size"] - g["seats"],
        "expires_at": _iso(g["expires_at"]),
        "seconds_left": int(g["left_s"]) if g["status"] == "open" and g["left_s"] else 0,
        "finished_at": _iso(g["finished_at"]),
        "members": [
            {
                "user_id": m["user_id"],
                "nickname": m["nickname"],
                "avatar_url": m["avatar_url"],
                "paid": m["status"] == "paid",
                "joined_at": m["joined_at"].isoformat(),
            }
            for m in members
        ],
    }


async def list_open(
    conn: asyncpg.Connection | asyncpg.Pool, goods_id: int, limit: int
) -> list[dict[str, Any]]:
    """Open groups of a goods' active offers with seats left, closest to filling first."""
    rows = await conn.fetch(
        """SELECT g.id FROM groups g JOIN group_offers o ON o.id = g.offer_id
           JOIN goods gd ON gd.id = o.goods_id AND gd.status <> 'draft'
           WHERE o.goods_id = $1 AND o.active AND g.status = 'open' AND g.expires_at > now()
             AND g.seats < g.size
           ORDER BY g.size - g.seats, g.expires_at LIMIT $2""",
        goods_id,
        limit,
    )
    return [await get_group(conn, r["id"]) for r in rows]


async def _replay(
    conn: asyncpg.Connection,
    user_id: int,
    key: str,
    *,
    offer_id: int | None = None,
    group_id: int | None = None,
) -> dict[str, Any] | None:
    """The first result of this user's Idempotency-Key, if it made a group order.

    ``offer_id`` (an open: the key must have opened a group of that offer) or ``group_id`` (a
    join: the key must have joined that group) is what the replayed request asks for.

    Raises:
        Conflict: ``idempotency_key_reused`` when the key's order was for another request.
    """
    row = await conn.fetchrow(
        """SELECT m.group_id, o.id AS order_id, g.offer_id, g.leader_id FROM orders o
           JOIN group_members m ON m.order_id = o.id JOIN groups g ON g.id = m.group_id
           WHERE o.user_id = $1 AND o.idempotency_key = $2""",
        user_id,
        key,
    )
    if row is None:
        return None
    opened = row["leader_id"] == user_id
    if (offer_id is not None and (not opened or row["offer_id"] != offer_id)) or (
        group_id is not None and (opened or row["group_id"] != group_id)
    ):
        raise Conflict(
            "Idempotency-Key was already used for another order", code="idempotency_key_reused"
        )
    return await _result(conn, user_id, row["group_id"], row["order_id"])


async def _result(
    conn: asyncpg.Connection, user_id: int, group_id: int, order_id: int
) -> dict[str, Any]:
    return {
        "group_id": group_id,
        "order": await orders.get_order(conn, user_id, order_id),
    }


async def _one_open_group_rule(
    conn: asyncpg.Connection, cfg: GroupsConfig, user_id: int, offer_id: int
) -> None:
    if not cfg.one_open_group_per_offer:
        return
    # Serialize this user's opens/joins (transaction-scoped) so the check below cannot race.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('lc-group-user', $1))",
                       user_id)  # fmt: skip
    busy = await conn.fetchval(
        """SELECT 1 FROM group_members m JOIN groups g ON g.id = m.group_id
           WHERE m.user_id = $1 AND g.offer_id = $2 AND g.status IN ('pending', 'open')
             AND m.status IN ('pending', 'paid')""",
        user_id,
        offer_id,
    )
    if busy:
        raise Conflict("you are already in an open group of this offer", code="already_in_group")


async def open_group(
    conn: asyncpg.Connection,
    cfg: GroupsConfig,
    *,
    user_id: int,
    offer_id: int,
    idempotency_key: str,
    payment_timeout_seconds: float,
) -> tuple[dict[str, Any], bool]:
    """Open a group: the leader's order at the group price; joinable once it is paid.

    Returns ({group_id, order}, created); a replayed key returns the first result.
    """
    existing = await _replay(conn, user_id, idempotency_key, offer_id=offer_id)
    if existing is not None:
        return existing, False
    try:
        async with conn.transaction():
            offer = await conn.fetchrow(
                "SELECT goods_id, group_price_fen, size FROM group_offers WHERE id = $1 AND active",
                offer_id,
            )
            if offer is None:
                raise NotFound("no such group offer", code="offer_not_found")
            await _one_open_group_rule(conn, cfg, user_id, offer_id)
            group_id = await conn.fetchval(
                "INSERT INTO groups (offer_id, leader_id, size) VALUES ($1, $2, $3) RETURNING id",
                offer_id,
                user_id,
                offer["size"],
            )
            order, created = await orders.create_order(
                conn,
                user_id=user_id,
                goods_id=offer["goods_id"],
                quantity=1,
                idempotency_key=idempotency_key,
                payment_timeout_seconds=payment_timeout_seconds,
                unit_price_fen=offer["group_price_fen"],
            )
            if not created:
                raise _Replay({})
            await conn.execute(
                "INSERT INTO group_members (group_id, user_id, order_id) VALUES ($1, $2, $3)",
                group_id,
                user_id,
                order["id"],
            )
    except _Replay:
        again = await _replay(conn, user_id, idempotency_key, offer_id=offer_id)
        if again is None:
            raise Conflict(
                "Idempotency-Key was already used for another order", code="idempotency_key_reused"
            ) from None
        return again, False
    return {"group_id": group_id, "order": order}, True


async def join_group(
    conn: asyncpg.Connection,
    cfg: GroupsConfig,
    *,
    user_id: int,
    group_id: int,
    idempotency_key: str,
    payment_timeout_seconds: float,
) -> tuple[dict[str, Any], bool]:
    """Join an open group: take a seat, become a member, order at the group price — together.

    Raises:
        NotFound: no such group. Conflict: ``group_full``, ``group_expired``, ``group_closed``
            (succeeded, failed or cancelled), ``already_joined``, ``already_in_group`` or the
            order flow's ``sold_out``.
    """
    existing = await _replay(conn, user_id, idempotency_key, group_id=group_id)
    if existing is not None:
        return existing, False
    try:
        async with conn.transaction():
            offer_id = await conn.fetchval("SELECT offer_id FROM groups WHERE id = $1", group_id)
            if offer_id is None:
                raise NotFound("no such group", code="group_not_found")
            if await conn.fetchval(
                """SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2
                   AND status IN ('pending', 'paid')""",
                group_id,
                user_id,
            ):
                raise Conflict("you are already in this group", code="already_joined")
            await _one_open_group_rule(conn, cfg, user_id, offer_id)
            seat = await conn.fetchrow(
                """UPDATE groups g SET seats = seats + 1 FROM group_offers o
                   WHERE g.id = $1 AND o.id = g.offer_id AND g.status = 'open'
                     AND g.expires_at > now() AND g.seats < g.size
                   RETURNING o.goods_id, o.group_price_fen""",
                group_id,
            )
            if seat is None:
                raise await _why_not_joinable(conn, group_id)
            order, created = await orders.create_order(
                conn,
                user_id=user_id,
                goods_id=seat["goods_id"],
                quantity=1,
                idempotency_key=idempotency_key,
                payment_timeout_seconds=payment_timeout_seconds,
                unit_price_fen=seat["group_price_fen"],
            )
            if not created:
                raise _Replay({})
            member = await conn.fetchval(
                """INSERT INTO group_members AS m (group_id, user_id, order_id)
                   VALUES ($1, $2, $3)
                   ON CONFLICT (group_id, user_id) DO UPDATE
                   SET order_id = EXCLUDED.order_id, status = 'pending', joined_at = now()
                   WHERE m.status = 'cancelled' RETURNING 1""",
                group_id,
                user_id,
                order["id"],
            )
            if member is None:
                raise Conflict("you are already in this group", code="already_joined")
    except _Replay:
        again = await _replay(conn, user_id, idempotency_key, group_id=group_id)
        if again is None:
            raise Conflict(
                "Idempotency-Key was already used for another order", code="idempotency_key_reused"
            ) from None
        return again, False
    return {"group_id": group_id, "order": order}, True


async def _why_not_joinable(conn: asyncpg.Connection, group_id: int) -> Exception:
    g = await conn.fetchrow(
        "SELECT status, seats, size, expires_at <= now() AS expired FROM groups WHERE id = $1",
        group_id,
    )
    if g is None or g["status"] == "pending":
        return NotFound("no such group", code="group_not_found")
    if g["status"] == "open" and g["expired"]:
        return Conflict("the group's time to fill is over", code="group_expired")
    if g["status"] == "open" or g["status"] == "succeeded":
        return Conflict("the group is full", code="group_full")
    return Conflict(f"the group is {g['status']}", code="group_closed")


# -- order events (called by the event worker inside the event's transaction) -----------------


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


async def expire_due(pool: asyncpg.Pool, batch: int) -> list[int]:
    """Fail open groups past their time; several nodes may run this at once (SKIP LOCKED)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT id FROM groups WHERE status = 'open' AND expires_at <= now()
               ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED""",
            batch,
        )
        for r in rows:
            await fail_group(conn, r["id"])
    return [r["id"] for r in rows]


async def seconds_to_next_deadline(conn: asyncpg.Connection | asyncpg.Pool) -> float | None:
    value = await conn.fetchval(
        """SELECT EXTRACT(EPOCH FROM min(expires_at) - now())::float8
           FROM groups WHERE status = 'open'"""
    )
    return None if value is None else float(value)
