"""Flash sales and group offers on the console's shelf: the host's lists, and group offers as
live-room bubbles with their progress ("N joined, M to go").

A pushed group offer is a ``group_offer_push`` frame carrying the offer and its *featured*
group — the open group with seats left that is closest to filling (the one a viewer joins
from the bubble), or none (the viewer starts one). Whenever a group of the offer changes (a
join takes a seat, a payment opens, counts or fills a group, a cancel frees a seat, a group
fails) :func:`announce` publishes a ``group_progress`` frame with the featured group to every
room the offer was pushed into (a Redis set, like flash sales' stock updates) — only when it
differs from the last one published to that room, so a frame is one real change. Flash sales
already have their bubble (``flash_sale_push``) and throttled ``flash_sale_stock`` frames
(:mod:`flashsale`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import Any

import asyncpg
import orjson
from redis.exceptions import RedisError

from livecommerce import redis_keys as rk
from livecommerce.commerce.goods import goods_summary
from livecommerce.errors import Conflict, NotFound
from livecommerce.realtime.broker import Broker
from livecommerce.rooms.service import owned_room, require_live
from livecommerce.social.flashsale import SALE_COLUMNS, sale_json

log = logging.getLogger("livecommerce.social.offers")
MAX_LIST = 50
ROOMS_TTL_SECONDS = 7 * 24 * 3600  # a pushed offer's rooms are remembered this long
_ROOM_FILTER = """($2::bigint IS NULL OR EXISTS (
    SELECT 1 FROM room_goods rg WHERE rg.room_id = $2 AND rg.goods_id = g.id))"""


async def host_flash_sales(
    conn: asyncpg.Connection | asyncpg.Pool, host_id: int, room_id: int | None
) -> list[dict[str, Any]]:
    """The host's flash sales, newest first (at most ``MAX_LIST``); with ``room_id``, those
    of goods attached to that room. ``stock_left`` is PostgreSQL's (units not held by orders)."""
    rows = await conn.fetch(
        f"""SELECT {SALE_COLUMNS} FROM flash_sales s JOIN goods g ON g.id = s.goods_id
            WHERE s.host_id = $1 AND {_ROOM_FILTER} ORDER BY s.id DESC LIMIT $3""",
        host_id,
        room_id,
        MAX_LIST,
    )
    return [sale_json(r) for r in rows]


_OFFER = """SELECT o.id, o.host_id, o.goods_id, o.group_price_fen, o.size, o.fill_seconds,
    o.active, o.created_at, g.title, g.images, g.price_fen, g.status AS goods_status
    FROM group_offers o JOIN goods g ON g.id = o.goods_id"""


async def featured_group(
    conn: asyncpg.Connection | asyncpg.Pool, offer_id: int
) -> dict[str, Any] | None:
    """The offer's open group with seats left closest to filling (then soonest to expire):
    ``{id, size, joined, to_go, paid, expires_at}`` — joined = seats taken (paid or not)."""
    g = await conn.fetchrow(
        """SELECT id, size, seats, paid, expires_at FROM groups
           WHERE offer_id = $1 AND status = 'open' AND expires_at > now() AND seats < size
           ORDER BY size - seats, expires_at, id LIMIT 1""",
        offer_id,
    )
    if g is None:
        return None
    return {
        "id": g["id"],
        "size": g["size"],
        "joined": g["seats"],
        "to_go": g["size"] - g["seats"],
        "paid": g["paid"],
        "expires_at": g["expires_at"].isoformat(),
    }


async def _offer_json(
    conn: asyncpg.Connection | asyncpg.Pool, row: asyncpg.Record
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "host_id": row["host_id"],
        "goods": goods_summary(row),
        "group_price_fen": row["group_price_fen"],
        "size": row["size"],
        "fill_seconds": row["fill_seconds"],
        "active": row["active"],
        "created_at": row["created_at"].isoformat(),
        "group": await featured_group(conn, row["id"]),
    }


async def host_group_offers(
    conn: asyncpg.Connection | asyncpg.Pool, host_id: int, room_id: int | None
) -> list[dict[str, Any]]:
    """The host's group offers with their featured group, newest first (as above)."""
    rows = await conn.fetch(
        f"""{_OFFER} WHERE o.host_id = $1 AND {_ROOM_FILTER} ORDER BY o.id DESC LIMIT $3""",
        host_id,
        room_id,
        MAX_LIST,
    )
    return [await _offer_json(conn, r) for r in rows]


async def group_offer(conn: asyncpg.Connection | asyncpg.Pool, offer_id: int) -> dict[str, Any]:
    """A group offer as a viewer sees it (drafts' offers are 404)."""
    row = await conn.fetchrow(f"{_OFFER} WHERE o.id = $1", offer_id)
    if row is None or row["goods_status"] == "draft":
        raise NotFound("no such group offer", code="offer_not_found")
    return await _offer_json(conn, row)


async def push_group_offer(
    pool: asyncpg.Pool,
    broker: Broker,
    *,
    host_id: int,
    room_id: int,
    offer_id: int,
    show_seconds: int,
) -> dict[str, Any]:
    """Show the offer as the live room's bubble; its groups' progress follows
    (``group_progress`` frames). ``{seq, push_id, offer}``.

    Raises:
        NotFound: the room or the offer is not the host's (answered like missing ones).
        Conflict: ``room_not_live`` (scheduled), ``room_ended``; ``offer_inactive``;
            ``not_on_sale`` (the goods).
    """
    async with pool.acquire() as conn:
        require_live(await owned_room(conn, host_id, room_id))
        row = await conn.fetchrow(f"{_OFFER} WHERE o.id = $1 AND o.host_id = $2", offer_id,
                                  host_id)  # fmt: skip
        if row is None:
            raise NotFound("no such group offer", code="offer_not_found")
        if not row["active"]:
            raise Conflict("the group offer is no longer active", code="offer_inactive")
        if row["goods_status"] != "on_sale":
            raise Conflict("these goods are not on sale", code="not_on_sale")
        offer = await _offer_json(conn, row)
    body = {
        "type": "group_offer_push",
        "push_id": secrets.token_hex(6),
        "offer": offer,
        "show_seconds": show_seconds,
    }
    rooms = rk.group_offer_rooms(offer_id)
    await broker.redis.sadd(rooms, room_id)
    await broker.redis.expire(rooms, ROOMS_TTL_SECONDS)
    await broker.redis.set(
        rk.group_progress_last(offer_id, room_id), _signature(offer["group"]),
        ex=ROOMS_TTL_SECONDS,
    )  # fmt: skip
    published = await broker.publish(room_id, body, state_op="set", state_field="bubble")
    return {"seq": published.seq, "push_id": body["push_id"], "offer": offer}


def _signature(group: dict[str, Any] | None) -> bytes:
    if group is None:
        return b"-"
    return orjson.dumps([group["id"], group["joined"], group["paid"]])


async def announce(pool: asyncpg.Pool, broker: Broker, offer_ids: Iterable[int]) -> int:
    """Publish each offer's featured group to the rooms it was pushed into, where it changed
    since the last frame there (``group_progress``); the frames published. Redis or
    PostgreSQL trouble is logged, never raised: progress frames are a courtesy, the REST
    state is the truth."""
    sent = 0
    try:
        for offer_id in sorted(set(offer_ids)):
            rooms = await broker.redis.smembers(rk.group_offer_rooms(offer_id))
            if not rooms:
                continue
            group = await featured_group(pool, offer_id)
            sig = _signature(group)
            for raw in sorted(int(r) for r in rooms):
                last = await broker.redis.set(
                    rk.group_progress_last(offer_id, raw), sig, ex=ROOMS_TTL_SECONDS, get=True
                )
                if last == sig:
                    continue
                await broker.publish(
                    raw, {"type": "group_progress", "offer_id": offer_id, "group": group}
                )
                sent += 1
    except (RedisError, OSError, asyncpg.PostgresError) as exc:
        log.warning("group progress not announced (%s)", type(exc).__name__)
    return sent


async def announce_groups(pool: asyncpg.Pool, broker: Broker, group_ids: list[int]) -> int:
    """:func:`announce` for the offers of these groups (errors logged, as there)."""
    try:
        offer_ids = await offers_of_groups(pool, group_ids)
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("group progress not announced (%s)", type(exc).__name__)
        return 0
    return await announce(pool, broker, offer_ids)


async def offers_of_groups(
    conn: asyncpg.Connection | asyncpg.Pool, group_ids: list[int]
) -> list[int]:
    rows = await conn.fetch(
        "SELECT DISTINCT offer_id FROM groups WHERE id = ANY($1::bigint[])", group_ids
    )
    return [r["offer_id"] for r in rows]


async def offers_of_orders(
    conn: asyncpg.Connection | asyncpg.Pool, order_ids: list[int]
) -> list[int]:
    rows = await conn.fetch(
        """SELECT DISTINCT g.offer_id FROM group_members m JOIN groups g ON g.id = m.group_id
           WHERE m.order_id = ANY($1::bigint[])""",
        order_ids,
    )
    return [r["offer_id"] for r in rows]
