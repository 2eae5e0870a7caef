"""Flash sales in live rooms: the sale pushed as a room's bubble, and its stock left announced to
every room showing it.
"""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from livecommerce import redis_keys as rk
from livecommerce.errors import Conflict, NotFound
from livecommerce.realtime.broker import Broker
from livecommerce.rooms.service import owned_room, require_live
from livecommerce.social.flashsale.reading import get_sale, sale_row
from livecommerce.social.flashsale.stock import FlashStock


async def push_to_room(
    pool: asyncpg.Pool,
    broker: Broker,
    stock: FlashStock,
    *,
    host_id: int,
    room_id: int,
    sale_id: int,
    show_seconds: int,
) -> dict[str, Any]:
    """Show the sale as the live room's bubble, with its stock left; later purchases publish
    ``flash_sale_stock`` frames to the room (throttled). Both go through Broker.publish.

    Raises:
        NotFound: the room or the sale is not the host's (answered like missing ones).
        Conflict: ``room_not_live`` (scheduled), ``room_ended``; ``not_on_sale`` when the
            sale's goods are no longer on sale.
    """
    async with pool.acquire() as conn:
        require_live(await owned_room(conn, host_id, room_id))
        row = await sale_row(conn, sale_id)
    if row["host_id"] != host_id:
        raise NotFound("no such flash sale", code="not_found")
    if row["goods_status"] != "on_sale":
        raise Conflict("these goods are not on sale", code="not_on_sale")
    sale = await get_sale(pool, stock, sale_id)
    body = {
        "type": "flash_sale_push",
        "push_id": secrets.token_hex(6),
        "sale": sale,
        "show_seconds": show_seconds,
    }
    await stock.redis.sadd(rk.flash_rooms(sale_id), room_id)
    published = await broker.publish(room_id, body, state_op="set", state_field="bubble")
    return {"seq": published.seq, "push_id": body["push_id"], "sale": sale}


async def announce_stock(broker: Broker, stock: FlashStock, sale_id: int, left: int) -> int:
    """Publish the stock left to every room showing the sale (at most one frame per room per
    ``flash_sale.stock_update_min_interval_ms``; sold out always). Returns frames published."""
    rooms = await stock.redis.smembers(rk.flash_rooms(sale_id))
    sent = 0
    for raw in rooms:
        room_id = int(raw)
        interval = stock.cfg.stock_update_min_interval_ms
        if left > 0 and interval > 0:
            fresh = await stock.redis.set(
                rk.flash_stock_throttle(sale_id, room_id), b"1", nx=True, px=interval
            )
            if not fresh:
                continue
        await broker.publish(
            room_id, {"type": "flash_sale_stock", "sale_id": sale_id, "stock_left": max(left, 0)}
        )
        sent += 1
    return sent
