"""The live counters on a real Redis: one script call per room, the pushes' fields beside."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from livecommerce.growth.analytics.events import server_row
from livecommerce.growth.analytics.live import LiveCounters, live_key
from tests.growth.analytics.live_counters_case import client_row, count_rooms


async def test_one_flush_over_several_rooms_counts_each(redis: Redis) -> None:
    await count_rooms(redis, (1, 2, 3))


async def test_a_flush_of_one_room_leaves_the_others_alone(redis: Redis) -> None:
    await count_rooms(redis, (5,))
    assert not await redis.exists("lc:an:{1}:live")


async def test_a_viewer_cannot_grow_the_room_hash_without_end(redis: Redis) -> None:
    """Client events may name any `push_seq` and any `custom:` type. Each (seq, type) and each
    type was a field of the room's live hash, which the live endpoint and the console's
    `stats` frame read whole every second: one anonymous viewer posting events with fresh
    seqs (20,000 fields in 3 s) made that read 100 times slower, without end. Now a push's
    fields are counted only for seqs the server published (its `push_published` may come in
    the same flush), and new `custom:` types only while the hash is under its cap."""
    counters = LiveCounters(redis, max_fields=100)
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    rows = [client_row("bubble_click", 7, 100_000 + seq) for seq in range(1000)]  # never pushed
    rows += [client_row(f"custom:t{i}", 7, None) for i in range(1000)]
    rows += [client_row("bubble_click", 7, 5)] * 2 + [client_row("share", 7, None)]
    rows.append(server_row("push_published", room_id=7, goods_id=9, push_seq=5, at=at))
    await counters.add(rows)
    await counters.add(rows)
    assert await redis.hlen(live_key(7)) <= 100 + 10
    live = await counters.read(7)
    assert [(p["push_seq"], p["clicks"]) for p in live["pushes"]] == [(5, 4)]
    assert live["events"]["bubble_click"] == 2004
    assert live["events"]["share"] == 2  # a type of the server's list is always counted
    assert live["events"]["custom:t0"] == 2  # the first types, made while under the cap
