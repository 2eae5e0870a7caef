"""Spending points at checkout: the order and the points debit commit or roll back together."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce import orders
from livecommerce.config import PointsConfig
from livecommerce.errors import Conflict, NotFound
from livecommerce.social.points import spending


async def checkout(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    *,
    user_id: int,
    goods_id: int,
    quantity: int,
    points_to_spend: int,
    idempotency_key: str,
    payment_timeout_seconds: float,
) -> tuple[dict[str, Any], bool]:
    """Create an order with ``points_to_spend`` points off its total; returns (order, created).

    One transaction: the goods row is locked (so the price the discount is checked against is
    the price the order snapshots), the order is created (stock reserved), then the points are
    debited — not enough points rolls the order and its stock back. A replayed
    Idempotency-Key returns the first order and spends nothing; the key reused for another
    goods, quantity or number of points is ``idempotency_key_reused``.

    Raises:
        ValidationError: ``points`` over the allowed share of the total.
        Conflict: ``insufficient_points``, or the order flow's conflicts (sold out ...).
    """
    async with conn.transaction():
        # A replay answers the first order before today's price is looked at: the discount
        # cap was checked against the price it was made at.
        replay = await orders.replayed(conn, user_id, idempotency_key, goods_id, quantity)
        if replay is not None and await conn.fetchval(
            """SELECT 1 FROM flash_sale_orders WHERE order_id = $1
               UNION ALL SELECT 1 FROM group_members WHERE order_id = $1 LIMIT 1""",
            replay["id"],
        ):
            # The key made a flash-sale or group order: not this checkout's answer.
            raise Conflict(
                "Idempotency-Key was already used for another order",
                code="idempotency_key_reused",
            )
        if replay is not None:
            order, created = replay, False
        else:
            goods = await conn.fetchrow(
                "SELECT price_fen, status FROM goods WHERE id = $1 FOR UPDATE", goods_id
            )
            if goods is None or goods["status"] == "draft":
                # Before the points cap: its message would tell a hidden draft's price.
                raise NotFound("no such goods")
            discount = spending.discount_for(cfg, points_to_spend, goods["price_fen"] * quantity)
            order, created = await orders.create_order(
                conn,
                user_id=user_id,
                goods_id=goods_id,
                quantity=quantity,
                idempotency_key=idempotency_key,
                payment_timeout_seconds=payment_timeout_seconds,
                discount_fen=discount,
            )
        if created and points_to_spend:
            await spending.spend(conn, cfg, user_id, points_to_spend, order["id"])
    spent = await conn.fetchval(
        """SELECT coalesce(-sum(delta), 0) FROM points_entries
           WHERE user_id = $1 AND idempotency_key = $2""",
        user_id,
        f"spend:order:{order['id']}",
    )
    order["points_spent"] = int(spent)
    if not created and order["points_spent"] != points_to_spend:
        # The same key with another goods or quantity is caught by create_order; another
        # number of points is caught here.
        raise Conflict(
            "Idempotency-Key was already used for another order", code="idempotency_key_reused"
        )
    return order, created
