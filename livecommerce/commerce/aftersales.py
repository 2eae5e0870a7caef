"""After-sales: a buyer asks for a refund of a paid or shipped order; the order's host decides.

::

    requested --host approves--> approved   (order -> refunded; its payment refund_required,
        |                                    so migration 0010's trigger creates the refund)
        +-----host rejects-----> rejected   (the buyer may ask again)

At most one open request per order (a unique partial index); each decision is a conditional
UPDATE ``WHERE status = 'requested'``, so two decisions cannot both apply. Approving an order
that was still ``paid`` (not shipped) gives its stock back; a shipped one does not (the goods
are with the buyer or on their way back). Points are reversed by the order-event rules when
the order becomes ``refunded`` (exactly once). The buyer gets an ``aftersale_approved`` or
``aftersale_rejected`` notice. If WeChat Pay closes the refund (the buyer was not paid back),
the order goes back to paid / shipped (:func:`refunds.close`); the request stays ``approved``
and the buyer may ask again (the new approval's refund gets a new source key, migration 0024).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound
from livecommerce.notify import outbox

COLUMNS = """id, order_id, user_id, host_id, reason, return_goods, status, host_note,
    created_at, decided_at"""
OPEN_FOR = ("paid", "shipped")


def to_json(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    for k in ("created_at", "decided_at"):
        out[k] = row[k].isoformat() if row[k] is not None else None
    return out


async def request(
    conn: asyncpg.Connection, *, user_id: int, order_id: int, reason: str, return_goods: bool
) -> tuple[dict[str, Any], bool]:
    """The buyer opens a request (or gets the open one again); (request, created).

    Raises:
        NotFound: not the buyer's order. Conflict: the order is not paid or shipped.
    """
    async with conn.transaction():
        order = await conn.fetchrow(
            "SELECT status, host_id FROM orders WHERE id = $1 AND user_id = $2 FOR UPDATE",
            order_id,
            user_id,
        )
        if order is None:
            raise NotFound("no such order")
        existing = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM after_sales WHERE order_id = $1 AND status = 'requested'",
            order_id,
        )
        if existing is not None:
            return to_json(existing), False
        if order["status"] not in OPEN_FOR:
            raise Conflict(
                f"cannot ask for a refund of an order that is {order['status']}",
                code="illegal_transition",
            )
        row = await conn.fetchrow(
            f"""INSERT INTO after_sales (order_id, user_id, host_id, reason, return_goods)
                VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}""",
            order_id,
            user_id,
            order["host_id"],
            reason,
            return_goods,
        )
    return to_json(row), True


async def list_for_order(
    conn: asyncpg.Connection | asyncpg.Pool, *, user_id: int, order_id: int
) -> list[dict[str, Any]]:
    """The buyer's requests for one of their orders, oldest first (another's order: 404)."""
    if (
        await conn.fetchval(
            "SELECT 1 FROM orders WHERE id = $1 AND user_id = $2", order_id, user_id
        )
        is None
    ):
        raise NotFound("no such order")
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM after_sales WHERE order_id = $1 ORDER BY id", order_id
    )
    return [to_json(r) for r in rows]


async def list_for_host(
    conn: asyncpg.Connection | asyncpg.Pool,
    host_id: int,
    *,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the host's requests, newest first (keyset on id), optionally one status."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM after_sales
            WHERE host_id = $1 AND ($2::text IS NULL OR status = $2)
              AND ($3::bigint IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4""",
        host_id,
        status,
        after_id,
        limit + 1,
    )
    items = [to_json(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


async def decide(
    conn: asyncpg.Connection, *, host_id: int, request_id: int, approve: bool, note: str
) -> dict[str, Any]:
    """The host approves (the order is refunded in full) or rejects a request.

    Raises:
        NotFound: not a request for the host's orders. Conflict: already decided
            (``illegal_transition``), or the order can no longer be refunded.
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE after_sales SET status = $3, host_note = $4, decided_at = now()
                WHERE id = $1 AND host_id = $2 AND status = 'requested' RETURNING {COLUMNS}""",
            request_id,
            host_id,
            "approved" if approve else "rejected",
            note,
        )
        if row is None:
            status = await conn.fetchval(
                "SELECT status FROM after_sales WHERE id = $1 AND host_id = $2",
                request_id,
                host_id,
            )
            if status is None:
                raise NotFound("no such after-sales request")
            raise Conflict(f"this request is already {status}", code="illegal_transition")
        if approve:
            await _refund_order(conn, row["order_id"])
        await outbox.enqueue(
            conn,
            row["user_id"],
            f"aftersale_{row['status']}",
            f"aftersale:{request_id}:{row['status']}",
            {
                "order_id": row["order_id"],
                "after_sale_id": request_id,
                "status": "已同意" if approve else "已拒绝",
                "note": note,
            },
        )
    return to_json(row)


async def _refund_order(conn: asyncpg.Connection, order_id: int) -> None:
    order = await conn.fetchrow(
        """UPDATE orders o SET status = 'refunded', refunded_at = now(),
                  cancel_reason = 'after_sale', updated_at = now()
           FROM (SELECT status FROM orders WHERE id = $1 FOR UPDATE) before
           WHERE o.id = $1 AND o.status IN ('paid', 'shipped')
           RETURNING before.status AS was, o.goods_id, o.quantity, o.transaction_id""",
        order_id,
    )
    if order is None:
        raise Conflict("the order can no longer be refunded", code="illegal_transition")
    if order["was"] == "paid":
        await conn.execute("UPDATE orders SET stock_held = false WHERE id = $1", order_id)
        await conn.execute(
            "UPDATE goods SET stock = stock + $2 WHERE id = $1",
            order["goods_id"],
            order["quantity"],
        )
    await conn.execute(
        """UPDATE payments SET outcome = 'refund_required'
           WHERE order_id = $1 AND transaction_id = $2""",
        order_id,
        order["transaction_id"],
    )
