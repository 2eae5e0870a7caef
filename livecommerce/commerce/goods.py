"""Goods: host create/edit, and the waterfall feed walked by keyset (never OFFSET).

The feed is ordered by ``id`` descending. Ids never change, so a cursor ("everything older than
id N") stays exact when goods are added (they appear above, on a refresh) or edited/reordered
while a client scrolls: no item is shown twice and none is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from livecommerce.errors import NotFound, ValidationError

STATUSES = ("draft", "on_sale", "off_sale")
MAX_PAGE = 50
_COLUMNS = """g.id, g.host_id, g.title, g.description, g.images, g.price_fen, g.stock, g.category,
    g.status, g.created_at, g.updated_at,
    ARRAY(SELECT rg.room_id FROM room_goods rg WHERE rg.goods_id = g.id ORDER BY rg.room_id)
        AS room_ids"""

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class GoodsInput:
    """Fields of a create (all set) or an edit (None = unchanged)."""

    title: str | None = None
    description: str | None = None
    images: list[str] | None = None
    price_fen: int | None = None
    stock: int | None = None
    category: str | None = None
    status: str | None = None
    room_ids: list[int] | None = None


def to_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "host_id": row["host_id"],
        "title": row["title"],
        "description": row["description"],
        "images": list(row["images"]),
        "price_fen": row["price_fen"],
        "stock": row["stock"],
        "category": row["category"],
        "status": row["status"],
        "room_ids": list(row["room_ids"]),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def goods_summary(row: asyncpg.Record) -> dict[str, Any]:
    """The goods of an offer's row (a flash sale's, a group offer's: ``goods_id``, ``title``,
    ``images``, ``price_fen`` joined from ``goods``): ``{id, title, image, price_fen}``, the
    first image or ``""``, the price in fen."""
    return {
        "id": row["goods_id"],
        "title": row["title"],
        "image": row["images"][0] if row["images"] else "",
        "price_fen": row["price_fen"],
    }


async def _link_rooms(
    conn: asyncpg.Connection, host_id: int, goods_id: int, rooms: list[int]
) -> None:
    owned = await conn.fetch(
        "SELECT id FROM live_rooms WHERE id = ANY($1::bigint[]) AND host_id = $2", rooms, host_id
    )
    if len(owned) != len(rooms):
        raise ValidationError("room_ids", "every room must exist and belong to you")
    await conn.execute(
        "DELETE FROM room_goods WHERE goods_id = $1 AND NOT (room_id = ANY($2::bigint[]))",
        goods_id,
        rooms,
    )
    await conn.execute(
        """INSERT INTO room_goods (room_id, goods_id, position)
           SELECT r, $1, 0 FROM unnest($2::bigint[]) AS r ON CONFLICT DO NOTHING""",
        goods_id,
        rooms,
    )


async def create_goods(conn: asyncpg.Connection, host_id: int, g: GoodsInput) -> dict[str, Any]:
    """Insert goods of ``host_id`` (title, price_fen and stock required) and link its rooms."""
    async with conn.transaction():
        goods_id: int = await conn.fetchval(
            """INSERT INTO goods (host_id, title, description, images, price_fen, stock, category,
                                  status)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            host_id,
            g.title,
            g.description or "",
            g.images or [],
            g.price_fen,
            g.stock,
            g.category or "",
            g.status or "on_sale",
        )
        if g.room_ids:
            await _link_rooms(conn, host_id, goods_id, g.room_ids)
        return await get_goods(conn, goods_id)


async def update_goods(
    conn: asyncpg.Connection, host_id: int, goods_id: int, g: GoodsInput
) -> dict[str, Any]:
    """Change the given fields of the host's own goods; another host's goods are 404.

    Setting ``stock`` sets what is left to sell (units held by open orders are not in it).
    """
    async with conn.transaction():
        updated = await conn.fetchval(
            """UPDATE goods SET title = COALESCE($3, title),
                                description = COALESCE($4, description),
                                images = COALESCE($5, images),
                                price_fen = COALESCE($6, price_fen),
                                stock = COALESCE($7, stock),
                                category = COALESCE($8, category),
                                status = COALESCE($9, status),
                                updated_at = now()
               WHERE id = $1 AND host_id = $2 RETURNING id""",
            goods_id,
            host_id,
            g.title,
            g.description,
            g.images,
            g.price_fen,
            g.stock,
            g.category,
            g.status,
        )
        if updated is None:
            raise NotFound("no such goods")
        if g.room_ids is not None:
            await _link_rooms(conn, host_id, goods_id, g.room_ids)
        return await get_goods(conn, goods_id)


async def get_goods(conn: Conn, goods_id: int, *, public: bool = False) -> dict[str, Any]:
    """One goods item; ``public`` hides drafts (a viewer sees on- and off-sale goods)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM goods g WHERE g.id = $1 AND (NOT $2 OR g.status <> 'draft')",
        goods_id,
        public,
    )
    if row is None:
        raise NotFound("no such goods")
    return to_json(row)


async def feed(
    conn: Conn,
    *,
    limit: int,
    after_id: int | None = None,
    category: str | None = None,
    room_id: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of on-sale goods, newest first, older than ``after_id``.

    Returns the items and the id to continue after (None on the last page). Fetches one row more
    than asked to know whether another page exists.
    """
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM goods g
            WHERE g.status = 'on_sale'
              AND ($1::bigint IS NULL OR g.id < $1)
              AND ($2::text IS NULL OR g.category = $2)
              AND ($3::bigint IS NULL OR EXISTS (
                    SELECT 1 FROM room_goods rg WHERE rg.goods_id = g.id AND rg.room_id = $3))
            ORDER BY g.id DESC
            LIMIT $4""",
        after_id,
        category,
        room_id,
        limit + 1,
    )
    items = [to_json(r) for r in rows[:limit]]
    next_id = items[-1]["id"] if len(rows) > limit else None
    return items, next_id
