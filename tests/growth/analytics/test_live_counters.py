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
    seqs (20,000 fields in 3 s) made that read 100 times slower, without end. Now a new field
    of a client-named seq or `custom:` type is made only while the hash is under its cap; a
    published push's fields and fields already there are always counted."""
    counters = LiveCounters(redis, max_fields=100)
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    await counters.add([client_row("custom:t0", 7, None)])
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
    assert live["events"]["custom:t0"] == 3  # there before the cap was reached
    assert "custom:t999" not in live["events"]


async def test_a_push_counted_before_its_publication_is_recorded_keeps_its_counts(
    redis: Redis,
) -> None:
    """Viewers on another node may send a push's impressions before the publishing node's
    writer has flushed its `push_published` row (which writes the push's `at_ms`): those
    counts are kept, and the push shows them once its row is counted."""
    counters = LiveCounters(redis)
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    await counters.add([client_row("bubble_impression", 8, 6)] * 3)
    assert (await counters.read(8))["pushes"] == []  # not published as far as Redis knows
    await counters.add([server_row("push_published", room_id=8, goods_id=9, push_seq=6, at=at)])
    pushes = (await counters.read(8))["pushes"]
    assert [(p["push_seq"], p["impressions"], p["goods_id"]) for p in pushes] == [(6, 3, 9)]
