"""Server-side events recorded by database triggers in the business transaction: orders
placed/paid/refunded, groups formed/failed, flash-sale purchases — once each, and never failing
the business write when a partition is missing."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg

from livecommerce.growth.analytics import partitions
from livecommerce.growth.analytics.events import server_event_id
from tests.growth.analytics.test_reports import make_user, place_order
from tests.realtime.conftest import World
from tests.support import AppServer, http


async def _events(pool: asyncpg.Pool) -> list[tuple[str, int | None, int | None]]:
    rows = await pool.fetch(
        "SELECT type, order_id, amount_fen FROM analytics_events WHERE source = 'server'"
        " ORDER BY occurred_at, type"
    )
    return [(r["type"], r["order_id"], r["amount_fen"]) for r in rows]


async def test_order_group_and_flash_sale_events(pool: asyncpg.Pool, world: World) -> None:
    """Each business fact becomes exactly one server event with its amount and ids."""
    await partitions.maintain(pool, retention_days=90, ahead_days=1)
    g = world.goods_ids[0]
    user = await make_user(pool)
    order = await place_order(pool, user, g, 900)
    for status in ("paid", "paid", "refunded"):
        await pool.execute("UPDATE orders SET status = $2 WHERE id = $1", order, status)
    offer = await pool.fetchval(
        "INSERT INTO group_offers (host_id, goods_id, group_price_fen, size, fill_seconds)"
        " VALUES ($1, $2, 500, 2, 600) RETURNING id",
        world.host_id,
        g,
    )
    formed, failed = [
        await pool.fetchval(
            "INSERT INTO groups (offer_id, leader_id, size, status) VALUES ($1, $2, 2, 'open')"
            " RETURNING id",
            offer,
            user,
        )
        for _ in range(2)
    ]
    await pool.execute("UPDATE groups SET status = 'succeeded' WHERE id = $1", formed)
    await pool.execute("UPDATE groups SET status = 'failed' WHERE id = $1", failed)
    sale = await pool.fetchval(
        "INSERT INTO flash_sales (host_id, goods_id, sale_price_fen, stock, per_user_limit,"
        " starts_at, ends_at) VALUES ($1, $2, 100, 10, 1, now(), now() + interval '1 hour')"
        " RETURNING id",
        world.host_id,
        g,
    )
    flash_order = await place_order(pool, user, g, 100)
    await pool.execute(
        "INSERT INTO flash_sale_orders (order_id, sale_id, user_id, quantity, claim)"
        " VALUES ($1, $2, $3, 1, 'c')",
        flash_order,
        sale,
        user,
    )
    got = await _events(pool)
    assert sorted(t for t, _, _ in got) == sorted(
        ["order_placed", "order_paid", "order_refunded", "group_formed", "group_failed",
         "order_placed", "flash_sale_purchase"]
    )  # fmt: skip
    assert ("order_paid", order, 900) in got
    assert ("flash_sale_purchase", flash_order, 100) in got


async def test_missing_partition_never_fails_an_order(pool: asyncpg.Pool, world: World) -> None:
    """With no partition for today the order is still placed; only the event is skipped."""
    for day in await partitions.existing_days(pool):  # type: ignore[arg-type]
        await pool.execute(f"DROP TABLE {partitions.partition_name(day)}")
    user = await make_user(pool)
    order = await place_order(pool, user, world.goods_ids[0], 100)
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE id = $1", order) == 1
    assert await pool.fetchval("SELECT count(*) FROM analytics_events") == 0
    await partitions.maintain(pool, retention_days=90, ahead_days=1)


async def test_server_event_ids_cannot_be_sent_by_a_client(
    server: AppServer, pool: asyncpg.Pool, world: World
) -> None:
    """A viewer who sends the predictable id of a coming server event (the trigger's md5 of
    'order_placed:<id>', the app's uuid5 of a push) is refused ``bad_uuid``: server ids carry the
    reserved UUID variant 111, client ids must be RFC 9562's; the server events are recorded."""
    user = await make_user(pool)
    g = world.goods_ids[0]
    next_order = await pool.fetchval(
        "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM orders_id_seq"
    )
    md5_id = hashlib.md5(f"order_placed:{next_order}".encode()).digest()
    forged = [
        str(uuid.UUID(bytes=md5_id[:8] + bytes([md5_id[8] & 0x1F | 0xE0]) + md5_id[9:])),
        str(server_event_id("push", world.room_id, 1)),
        str(uuid.UUID(int=0)),  # the nil UUID: variant 0
        str(uuid.UUID(int=uuid.uuid4().int & ~(0b111 << 61) | (0b110 << 61))),  # Microsoft's
    ]
    status, body = await http(
        "POST", server.url + "/api/events",
        json={"events": [{"id": i, "type": "share"} for i in forged]},
        headers={"Authorization": f"Bearer {world.viewer_token()}"},
    )  # fmt: skip
    assert status == 200, body
    assert [r["code"] for r in body["rejected"]] == ["bad_uuid"] * 4, body  # type: ignore[index]
    order = await place_order(pool, user, g, 900)
    assert order == next_order
    ids = await pool.fetch(
        "SELECT event_id FROM analytics_events WHERE type = 'order_placed' AND order_id = $1",
        order,
    )
    assert [str(r["event_id"]) for r in ids] == [forged[0]]  # recorded, with the server's id
    assert (ids[0]["event_id"].int >> 61) & 0b111 == 0b111
