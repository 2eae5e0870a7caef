"""Creating a sale: a host's own goods, checked, written to PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from livecommerce.commerce.orders import MAX_TOTAL_FEN
from livecommerce.config import FlashSaleConfig
from livecommerce.errors import Conflict, NotFound, ValidationError
from livecommerce.social.flashsale.reading import sale_json, sale_row


async def create_sale(
    conn: asyncpg.Connection,
    cfg: FlashSaleConfig,
    *,
    host_id: int,
    goods_id: int,
    sale_price_fen: int,
    stock: int,
    per_user_limit: int,
    starts_at: datetime,
    ends_at: datetime,
) -> dict[str, Any]:
    """A host creates a sale of its own goods (which must have the stock on hand).

    The sale's stock caps how many units sell at the sale price; each order still takes the
    goods' stock like any order, so cancel/timeout/late-payment paths stay the commerce core's.
    """
    if ends_at <= starts_at:
        raise ValidationError("ends_at", "must be after starts_at")
    if per_user_limit > cfg.max_per_user_limit:
        raise ValidationError("per_user_limit", f"must be at most {cfg.max_per_user_limit}")
    if sale_price_fen * per_user_limit > MAX_TOTAL_FEN:
        # A purchase (lc_flash_buy) could otherwise make an order WeChat Pay cannot charge.
        raise ValidationError(
            "sale_price_fen",
            f"sale_price_fen x per_user_limit must be at most {MAX_TOTAL_FEN} fen (WeChat Pay)",
            code="amount_too_large",
        )
    goods = await conn.fetchrow(
        "SELECT status, stock, price_fen FROM goods WHERE id = $1 AND host_id = $2",
        goods_id,
        host_id,
    )
    if goods is None or goods["status"] == "draft":
        raise NotFound("no such goods", code="goods_not_found")
    if goods["status"] != "on_sale":
        raise Conflict("these goods are not on sale", code="not_on_sale")
    if goods["stock"] < stock:
        raise Conflict("the goods do not have that much stock", code="insufficient_stock")
    sale_id = await conn.fetchval(
        """INSERT INTO flash_sales (host_id, goods_id, sale_price_fen, stock, per_user_limit,
                                    starts_at, ends_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
        host_id,
        goods_id,
        sale_price_fen,
        stock,
        per_user_limit,
        starts_at,
        ends_at,
    )
    return sale_json(await sale_row(conn, sale_id))
