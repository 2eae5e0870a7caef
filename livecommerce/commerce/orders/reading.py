"""Reading orders: the order row (columns, JSON, merchant order number), the buyer's orders,
the host's orders with their refund issues."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce import merchant_no, refunds
from livecommerce.errors import NotFound

STATUSES = ("pending_payment", "paid", "shipped", "completed", "cancelled", "refunded")
MAX_PAGE = 50
COLUMNS = """id, user_id, goods_id, host_id, quantity, unit_price_fen, total_fen, title, image,
    status, carrier, tracking_no, transaction_id, cancel_reason, expires_at, paid_at, shipped_at,
    completed_at, cancelled_at, refunded_at, created_at, updated_at, address"""
_TIMES = (
    "expires_at",
    "paid_at",
    "shipped_at",
    "completed_at",
    "cancelled_at",
    "refunded_at",
    "created_at",
    "updated_at",
)


def out_trade_no(order_id: int) -> str:
    """The merchant order number sent to WeChat Pay (6-32 chars of [0-9A-Za-z])."""
    return merchant_no.make("LC", order_id)


def parse_out_trade_no(value: object) -> int | None:
    return merchant_no.parse("LC", value)


def to_json(row: asyncpg.Record) -> dict[str, Any]:
    out = merchant_no.row_json(row, _TIMES)
    out["out_trade_no"] = out_trade_no(row["id"])
    return out


async def get_order(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, order_id: int
) -> dict[str, Any]:
    """The user's own order; anyone else's is NotFound (existence is not leaked)."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM orders WHERE id = $1 AND user_id = $2", order_id, user_id
    )
    if row is None:
        raise NotFound("no such order")
    return to_json(row)


async def list_orders(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    *,
    limit: int,
    after_id: int | None = None,
    status: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the user's orders, newest first (keyset on id)."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM orders
            WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
              AND ($3::text IS NULL OR status = $3)
            ORDER BY id DESC LIMIT $4""",
        user_id,
        after_id,
        status,
        limit + 1,
    )
    items = [to_json(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


HOST_VIEWS = ("after_sales_pending", "refunding", "refund_issues")


async def list_host_orders(
    conn: asyncpg.Connection | asyncpg.Pool,
    host_id: int,
    *,
    status: str | None,
    room_id: int | None,
    limit: int,
    after_id: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the host's orders, newest first (keyset on id).

    ``status`` is an order status (``paid`` = to ship) or ``after_sales_pending`` (an open
    after-sales request) or ``refunding`` (a refund not finished) or ``refund_issues`` (an
    abnormal refund, or a closed one no refund has followed yet); ``room_id`` keeps orders
    of goods shown in that room. Each order carries its ``refund_issues``: its closed and
    abnormal refunds (see :func:`refund_issues`).
    """
    plain = status if status not in HOST_VIEWS else None
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM orders o
            WHERE host_id = $1 AND ($2::bigint IS NULL OR id < $2)
              AND ($3::text IS NULL OR status = $3)
              AND ($4::bigint IS NULL OR EXISTS (
                    SELECT 1 FROM room_goods rg WHERE rg.room_id = $4 AND rg.goods_id = o.goods_id))
              AND (NOT $6 OR EXISTS (SELECT 1 FROM after_sales a
                                     WHERE a.order_id = o.id AND a.status = 'requested'))
              AND (NOT $7 OR EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id
                                     AND r.status IN ('pending', 'processing')))
              AND (NOT $8 OR EXISTS (
                    SELECT 1 FROM refunds r WHERE r.order_id = o.id
                    AND (r.status = 'abnormal' OR r.status = 'closed' AND NOT EXISTS (
                        SELECT 1 FROM refunds n WHERE n.order_id = o.id AND n.id > r.id))))
            ORDER BY id DESC LIMIT $5""",
        host_id,
        after_id,
        plain,
        room_id,
        limit + 1,
        status == "after_sales_pending",
        status == "refunding",
        status == "refund_issues",
    )
    items = [to_json(r) for r in rows[:limit]]
    issues = await refund_issues(conn, [o["id"] for o in items])
    for o in items:
        o["refund_issues"] = issues.get(o["id"], [])
    return items, (items[-1]["id"] if len(rows) > limit else None)


async def refund_issues(
    conn: asyncpg.Connection | asyncpg.Pool, order_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    """The closed and abnormal refunds of these orders (order id -> oldest first), each with
    ``next_refund_id``: the order's first refund made after it (a re-issue or the host's
    new refund; None: nothing has asked for that money again yet)."""
    if not order_ids:
        return {}
    rows = await conn.fetch(
        """SELECT r.id, r.order_id, r.status, r.amount_fen, r.reason, r.last_error,
                  r.finished_at,
                  (SELECT min(n.id) FROM refunds n
                   WHERE n.order_id = r.order_id AND n.id > r.id) AS next_refund_id
           FROM refunds r WHERE r.order_id = ANY($1::bigint[])
             AND r.status IN ('closed', 'abnormal')
           ORDER BY r.id""",
        order_ids,
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        item = merchant_no.row_json(r, ("finished_at",))
        item["out_refund_no"] = refunds.out_refund_no(r["id"])
        out.setdefault(r["order_id"], []).append(item)
    return out
