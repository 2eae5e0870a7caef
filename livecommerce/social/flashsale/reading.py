"""Reading a sale: its row (with its goods), its JSON, and the sale with its live stock left."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce.goods import goods_summary
from livecommerce.errors import NotFound
from livecommerce.social.flashsale.loading import reconcile
from livecommerce.social.flashsale.stock import FlashStock

SALE_COLUMNS = """s.id, s.host_id, s.goods_id, s.sale_price_fen, s.stock, s.sold, s.per_user_limit,
    s.starts_at, s.ends_at, s.created_at, g.title, g.images, g.price_fen,
    g.status AS goods_status"""


def sale_json(row: asyncpg.Record, stock_left: int | None = None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "host_id": row["host_id"],
        "goods": goods_summary(row),
        "sale_price_fen": row["sale_price_fen"],
        "stock": row["stock"],
        "stock_left": row["stock"] - row["sold"] if stock_left is None else max(stock_left, 0),
        "per_user_limit": row["per_user_limit"],
        "starts_at": row["starts_at"].isoformat(),
        "ends_at": row["ends_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
    }


async def sale_row(conn: asyncpg.Connection | asyncpg.Pool, sale_id: int) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {SALE_COLUMNS} FROM flash_sales s JOIN goods g ON g.id = s.goods_id"
        " WHERE s.id = $1",
        sale_id,
    )
    if row is None:
        raise NotFound("no such flash sale", code="not_found")
    return row


async def get_sale(pool: asyncpg.Pool, stock: FlashStock, sale_id: int) -> dict[str, Any]:
    """The sale with its live stock left (from Redis, rebuilt from PostgreSQL if missing).

    Raises:
        NotFound: no such sale, or its goods are (back to) a draft: drafts are never public.
    """
    row = await sale_row(pool, sale_id)
    if row["goods_status"] == "draft":
        raise NotFound("no such flash sale", code="not_found")
    left = await stock.stock_left(sale_id)
    if left is None:
        await reconcile(pool, stock, sale_id)
        left = await stock.stock_left(sale_id)
    return sale_json(row, left)
