"""Server-side events recorded by database triggers in the business transaction: orders
placed/paid/refunded, groups formed/failed, flash-sale purchases — once each, and never failing
the business write when a partition is missing."""

from __future__ import annotations

import asyncpg

from livecommerce.growth.analytics import partitions
from tests.growth.analytics.test_reports import make_user, place_order
from tests.realtime.conftest import World


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
