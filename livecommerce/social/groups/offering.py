"""Offering group buying: a host's group offer (price, size, time to fill) on its own goods."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.errors import NotFound


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
