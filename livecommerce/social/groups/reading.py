"""Reading groups: one group with its members, and the open groups of a goods.

A ``pending`` group (its leader has not paid yet) and a draft's groups are never shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from livecommerce.errors import NotFound

GROUP_STATUSES = ("pending", "open", "succeeded", "failed", "cancelled")
MAX_LIST = 50


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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
