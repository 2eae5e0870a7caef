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

from livecommerce import redis_keys as rk
from livecommerce.errors import Conflict, NotFound, ValidationError
from livecommerce.growth.experiments import bubble_push
from livecommerce.growth.experiments.bubbles import variant_push_body
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


async def room_goods(
    conn: asyncpg.Connection | asyncpg.Pool, room_id: int, *, public: bool = True
) -> list[dict[str, Any]]:
    """The room's goods in the room's order: ``[{id, title, price_fen, stock, image, category,
    status}]``.

    Only the room host's own goods count (a link to another host's goods, e.g. one made before
    the ownership check, is never shown); ``public`` also hides drafts — the host's own view
    (``public=False``, the answer to attaching) shows them.
    """
    rows = await conn.fetch(
        """SELECT g.id, g.title, g.price_fen, g.stock, g.images, g.category, g.status
           FROM room_goods rg JOIN goods g ON g.id = rg.goods_id
           JOIN live_rooms r ON r.id = rg.room_id AND r.host_id = g.host_id
           WHERE rg.room_id = $1 AND (NOT $2 OR g.status <> 'draft')
           ORDER BY rg.position, g.id""",
        room_id,
        public,
    )
    return [
        {
            "id": r["id"],
            "title": r["title"],
            "price_fen": r["price_fen"],
            "stock": r["stock"],
            "image": r["images"][0] if r["images"] else "",
            "category": r["category"],
            "status": r["status"],
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


def require_live(room: asyncpg.Record) -> None:
    """Refuse a push into ``room`` (a :func:`owned_room` row) unless it is live.

    Raises:
        Conflict: ``room_ended`` when it has ended (it cannot start again), ``room_not_live``
            when it is scheduled (start it first).
    """
    if room["state"] == "ended":
        raise Conflict("the room has ended", code="room_ended")
    if room["state"] != "live":
        raise Conflict("the room is not live", code="room_not_live")


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
    """Append the host's own goods (drafts too) to the host's room; the room's goods (host view).

    A draft stays out of the public room and cannot be pushed until it is on sale.

    Raises:
        NotFound: the room is not the host's (``room_not_found``).
        ValidationError: on ``goods_ids`` when an id names no goods *of this host* — another
            host's goods answer exactly like missing ones (their existence is not revealed).
    """
    async with conn.transaction():
        await owned_room(conn, host_id, room_id)
        found = await conn.fetch(
            "SELECT id FROM goods WHERE id = ANY($1::bigint[]) AND host_id = $2",
            goods_ids,
            host_id,
        )
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
    return await room_goods(conn, room_id, public=False)


async def push_goods(
    pool: asyncpg.Pool,
    broker: Broker,
    host_id: int,
    room_id: int,
    goods_id: int,
    *,
    show_seconds: int,
    idempotency_key: str | None = None,
    experiment_id: int | None = None,
    creatives: list[dict[str, Any]] | None = None,
) -> Published:
    """Show a goods bubble in a live room now (the host's own goods attached to the room).

    With ``experiment_id`` and ``creatives`` (one per variant, ``bubble_push.creatives_of``)
    the one published frame carries the experiment and every variant's creative; each viewer
    is shown its variant (docs/experiments.md, "Variants on live bubbles").

    With ``idempotency_key``, a replay with the same goods and ``show_seconds`` publishes
    nothing and answers the first seq (``fresh`` False); the key reused for another push is a
    conflict (the key's request is remembered as long as the publish key,
    ``PUBLISH_IDEMPOTENCY_TTL_SECONDS``).

    Raises:
        NotFound: ``room_not_found`` (not the host's), ``goods_not_in_room``.
        Conflict: ``room_not_live`` (scheduled), ``room_ended``, ``not_on_sale`` (a draft or
            off-sale goods),
            ``idempotency_key_reused``, ``experiment_not_running``.
        ValidationError: ``experiment_id`` (no such experiment of this host), ``variants``.
    """
    experiment: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
    async with pool.acquire() as conn:
        require_live(await owned_room(conn, host_id, room_id))
        goods = await conn.fetchrow(
            """SELECT g.id, g.title, g.price_fen, g.stock, g.images, g.status
               FROM room_goods rg JOIN goods g ON g.id = rg.goods_id
               WHERE rg.room_id = $1 AND rg.goods_id = $2 AND g.host_id = $3""",
            room_id,
            goods_id,
            host_id,
        )
        if goods is not None and experiment_id is not None:
            experiment = await bubble_push.resolve(conn, host_id, experiment_id, creatives or [])
    if goods is None:
        raise NotFound("goods is not attached to this room", code="goods_not_in_room")
    if goods["status"] != "on_sale":
        raise Conflict("these goods are not on sale", code="not_on_sale")
    if idempotency_key is not None:
        request = f"{goods_id}:{show_seconds}" + bubble_push.request_digest(
            experiment_id, creatives
        )
        await _claim_push_key(broker, room_id, idempotency_key, request)
    body = goods_push_body(goods, show_seconds)
    if experiment is not None:
        body = variant_push_body(body, *experiment)
    return await broker.publish(
        room_id,
        body,
        state_op="set",
        state_field="bubble",
        idempotency_key=idempotency_key,
    )


async def _claim_push_key(broker: Broker, room_id: int, key: str, request: str) -> None:
    """Bind ``key`` to this push's ``request`` (goods and show time) once, atomically (SET NX).

    Raises:
        Conflict: ``idempotency_key_reused`` when the key is bound to another request.
    """
    name = rk.room_push_request(room_id, key)
    ttl = rk.PUBLISH_IDEMPOTENCY_TTL_SECONDS
    if await broker.redis.set(name, request, nx=True, ex=ttl):
        return
    bound = await broker.redis.get(name)
    if isinstance(bound, bytes):
        bound = bound.decode()
    if bound is not None and bound != request:
        raise Conflict(
            "idempotency_key was already used for another push", code="idempotency_key_reused"
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
