"""The buyer's and the host's moves of an order: address, cancel, confirm receipt, ship."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce.orders.reading import COLUMNS, to_json
from livecommerce.errors import Conflict, NotFound
from livecommerce.notify import outbox


async def set_address(
    conn: asyncpg.Connection, user_id: int, order_id: int, address: dict[str, Any]
) -> dict[str, Any]:
    """The buyer sets or changes the address of an order not shipped yet (pending or paid).

    Raises:
        NotFound: not the buyer's order. Conflict: shipped, completed, cancelled or refunded.
    """
    row = await conn.fetchrow(
        f"""UPDATE orders SET address = $3, updated_at = now()
            WHERE id = $1 AND user_id = $2 AND status IN ('pending_payment', 'paid')
            RETURNING {COLUMNS}""",
        order_id,
        user_id,
        address,
    )
    if row is None:
        raise await _refuse(
            conn, "id = $1 AND user_id = $2", (order_id, user_id), "change the address of"
        )
    return to_json(row)


async def _refuse(
    conn: asyncpg.Connection, where: str, args: tuple[Any, ...], action: str
) -> Conflict:
    """Why a conditional transition touched no row: 404 if not the caller's, else 409."""
    status = await conn.fetchval(f"SELECT status FROM orders WHERE {where}", *args)
    if status is None:
        raise NotFound("no such order")
    return Conflict(f"cannot {action} an order that is {status}", code="illegal_transition")


async def cancel_order(conn: asyncpg.Connection, user_id: int, order_id: int) -> dict[str, Any]:
    """The buyer cancels an unpaid order; its stock is released in the same transaction.

    The answer also carries ``prepaid``: whether a WeChat Pay order was made for it (to close).
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE orders SET status = 'cancelled', cancel_reason = 'buyer',
                       cancelled_at = now(), stock_held = false, updated_at = now()
                WHERE id = $1 AND user_id = $2 AND status = 'pending_payment'
                RETURNING {COLUMNS}, prepay_id IS NOT NULL AS prepaid""",
            order_id,
            user_id,
        )
        if row is None:
            raise await _refuse(conn, "id = $1 AND user_id = $2", (order_id, user_id), "cancel")
        await conn.execute(
            "UPDATE goods SET stock = stock + $2 WHERE id = $1", row["goods_id"], row["quantity"]
        )
    return to_json(row)


async def confirm_received(conn: asyncpg.Connection, user_id: int, order_id: int) -> dict[str, Any]:
    """The buyer confirms receipt: shipped -> completed."""
    row = await conn.fetchrow(
        f"""UPDATE orders SET status = 'completed', completed_at = now(), updated_at = now()
            WHERE id = $1 AND user_id = $2 AND status = 'shipped' RETURNING {COLUMNS}""",
        order_id,
        user_id,
    )
    if row is None:
        raise await _refuse(conn, "id = $1 AND user_id = $2", (order_id, user_id), "complete")
    return to_json(row)


async def ship_order(
    conn: asyncpg.Connection, host_id: int, order_id: int, carrier: str, tracking_no: str
) -> dict[str, Any]:
    """The host ships a paid order of its goods: paid -> shipped. Other hosts' orders: 404.

    Every order is of physical goods, so it ships only with a shipping address: a paid order
    without one is Conflict ``address_required`` (the buyer adds it with
    :func:`set_address`, until the order ships). The buyer's ``order_shipped`` notification is
    queued in the same transaction.
    """
    async with conn.transaction():
        return await _ship(conn, host_id, order_id, carrier, tracking_no)


async def _ship(
    conn: asyncpg.Connection, host_id: int, order_id: int, carrier: str, tracking_no: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""UPDATE orders SET status = 'shipped', carrier = $3, tracking_no = $4,
                   shipped_at = now(), updated_at = now()
            WHERE id = $1 AND host_id = $2 AND status = 'paid' AND address IS NOT NULL
            RETURNING {COLUMNS}""",
        order_id,
        host_id,
        carrier,
        tracking_no,
    )
    if row is None:
        if await conn.fetchval(
            """SELECT 1 FROM orders WHERE id = $1 AND host_id = $2 AND status = 'paid'
               AND address IS NULL""",
            order_id,
            host_id,
        ):
            raise Conflict(
                "the buyer has not given a shipping address yet (PUT /api/orders/{id}/address)",
                code="address_required",
            )
        raise await _refuse(conn, "id = $1 AND host_id = $2", (order_id, host_id), "ship")
    await outbox.order_event(conn, order_id, "shipped")
    return to_json(row)
