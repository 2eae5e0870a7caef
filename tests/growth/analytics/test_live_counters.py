"""The live counters on a real Redis: one script call per room, the pushes' fields beside."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.growth.analytics.live_counters_case import count_rooms


async def test_one_flush_over_several_rooms_counts_each(redis: Redis) -> None:
    await count_rooms(redis, (1, 2, 3))


async def test_a_flush_of_one_room_leaves_the_others_alone(redis: Redis) -> None:
    await count_rooms(redis, (5,))
    assert not await redis.exists("lc:an:{1}:live")
