"""Live rooms: create, start, end, attach goods, push and withdraw goods bubbles.

PostgreSQL holds rooms and their state; the room's public info is cached in its Redis state
hash for joining viewers (rebuilt from PostgreSQL whenever it is missing). Every room frame is
published through :class:`~livecommerce.realtime.broker.Broker`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound, ValidationError
from livecommerce.realtime.broker import Broker, Published

ROOM_COLUMNS = (
    "id, host_id, title, cover_url, stream_url, state, planned_start_at, started_at, ended_at"
)


def room_info(row: asyncpg.Record) -> dict[str, Any]:
    """The public view of a room row (what viewers see in welcome)."""
    return {
        "id": row["id"],
        "host_id": row["host_id"],
        "title": row["title"],
        "cover_url": row["cover_url"],
        "stream_url": row["stream_url"],
        "state": row["state"],
        "planned_start_at": _iso(row["planned_start_at"]),
        "started_at": _iso(row["started_at"]),
        "ended_at": _iso(row["ended_at"]),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def create_room(
    conn: asyncpg.Connection,
    host_id: int,
    *,
    title: str,
    cover_url: str,
    stream_url: str,
    planned_start_at: datetime | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""INSERT INTO live_rooms (host_id, title, cover_url, stream_url, planned_start_at)
            VALUES ($1, $2, $3, $4, $5) RETURNING {ROOM_COLUMNS}""",
        host_id,
        title,
        cover_url,
        stream_url,
        planned_start_at,
    )
    return room_info(row)


async def get_room(conn: asyncpg.Connection | asyncpg.Pool, room_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {ROOM_COLUMNS} FROM live_rooms WHERE id = $1", room_id)
    return room_info(row) if row else None


async def room_goods(conn: asyncpg.Connection | asyncpg.Pool, room_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT g.id, g.title, g.price_fen, g.stock, g.images, g.category
           FROM room_goods rg JOIN goods g ON g.id = rg.goods_id
           WHERE rg.room_id = $1 ORDER BY rg.position, g.id""",
        room_id,
    )
    return [
        {
            "id": r["id"],
            "title": r["title"],
            "price_fen": r["price_fen"],
            "stock": r["stock"],
            "image": r["images"][0] if r["images"] else "",
            "category": r["category"],
        }
        for r in rows
    ]


async def owned_room(
    conn: asyncpg.Connection, host_id: int, room_id: int, *, lock: bool = False
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {ROOM_COLUMNS} FROM live_rooms WHERE id = $1 AND host_id = $2"
        + (" FOR UPDATE" if lock else ""),
        room_id,
        host_id,
    )
    if row is None:
        # Another host's room answers exactly like a missing one.
        raise NotFound("no such room", code="room_not_found")
    return row


async def set_state(
    pool: asyncpg.Pool, broker: Broker, host_id: int, room_id: int, target: str
) -> dict[str, Any]:
    """Move a room to ``live`` (from scheduled) or ``ended`` (from scheduled/live)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await owned_room(conn, host_id, room_id, lock=True)
        if row["state"] == target:
            return room_info(row)  # repeating start/end is a no-op, not an error
        allowed = {"live": ("scheduled",), "ended": ("scheduled", "live")}[target]
        if row["state"] not in allowed:
            raise Conflict(
                f"a {row['state']} room cannot become {target}", code="illegal_transition"
            )
        column = "started_at" if target == "live" else "ended_at"
        row = await conn.fetchrow(
            f"UPDATE live_rooms SET state = $2, {column} = now() WHERE id = $1"
            f" RETURNING {ROOM_COLUMNS}",
            room_id,
            target,
        )
    info = room_info(row)
    await broker.set_room_info(room_id, info)
    await broker.publish(room_id, {"type": "room_state", "state": target, "room": info})
    return info


async def attach_goods(
    conn: asyncpg.Connection, host_id: int, room_id: int, goods_ids: list[int]
) -> list[dict[str, Any]]:
    async with conn.transaction():
        await owned_room(conn, host_id, room_id)
        found = await conn.fetch("SELECT id FROM goods WHERE id = ANY($1::bigint[])", goods_ids)
        missing = sorted(set(goods_ids) - {r["id"] for r in found})
        if missing:
            raise ValidationError("goods_ids", f"unknown goods {missing}")
        start = await conn.fetchval(
            "SELECT coalesce(max(position) + 1, 0) FROM room_goods WHERE room_id = $1", room_id
        )
        await conn.executemany(
            """INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, $3)
               ON CONFLICT (room_id, goods_id) DO NOTHING""",
            [(room_id, gid, start + i) for i, gid in enumerate(goods_ids)],
        )
    return await room_goods(conn, room_id)


async def push_goods(
    pool: asyncpg.Pool,
    broker: Broker,
    host_id: int,
    room_id: int,
    goods_id: int,
    *,
    show_seconds: int,
    idempotency_key: str | None = None,
) -> Published:
    """Show a goods bubble in a live room now (the room's goods only)."""
    async with pool.acquire() as conn:
        room = await owned_room(conn, host_id, room_id)
        if room["state"] != "live":
            raise Conflict("the room is not live", code="room_not_live")
        goods = await conn.fetchrow(
            """SELECT g.id, g.title, g.price_fen, g.stock, g.images
               FROM room_goods rg JOIN goods g ON g.id = rg.goods_id
               WHERE rg.room_id = $1 AND rg.goods_id = $2""",
            room_id,
            goods_id,
        )
    if goods is None:
        raise NotFound("goods is not attached to this room", code="goods_not_in_room")
    return await broker.publish(
        room_id,
        goods_push_body(goods, show_seconds),
        state_op="set",
        state_field="bubble",
        idempotency_key=idempotency_key,
    )


def goods_push_body(goods: Mapping[str, Any], show_seconds: int, **extra: Any) -> dict[str, Any]:
    """The ``goods_push`` frame body for a goods row (id, title, price_fen, stock, images)."""
    return {
        "type": "goods_push",
        "push_id": secrets.token_hex(6),
        "goods": {
            "id": goods["id"],
            "title": goods["title"],
            "price_fen": goods["price_fen"],
            "image": goods["images"][0] if goods["images"] else "",
            "stock": goods["stock"],
        },
        "show_seconds": show_seconds,
        **extra,
    }


async def withdraw_goods(
    pool: asyncpg.Pool, broker: Broker, host_id: int, room_id: int
) -> Published:
    """Hide the current bubble (idempotent: withdrawing nothing still publishes the state)."""
    async with pool.acquire() as conn:
        room = await owned_room(conn, host_id, room_id)
    if room["state"] == "ended":
        raise Conflict("the room has ended", code="room_ended")
    return await broker.publish(
        room_id, {"type": "goods_withdraw"}, state_op="del", state_field="bubble"
    )
