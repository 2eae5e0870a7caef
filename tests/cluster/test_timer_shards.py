"""The timer wheel split over four slot-tagged wheels on the cluster: three nodes' dispatchers
claim from all of them, and each push still fires once, never early."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from redis.cluster import key_slot

from livecommerce import redis_keys as rk
from livecommerce.config import Settings
from livecommerce.devtools.valkey_cluster import LocalCluster
from livecommerce.timer.wheel import Wheel
from tests.realtime.conftest import World
from tests.timer.test_timer import (
    iso,
    pushes_in_history,
    schedule,
    scheduled_frames,
    soon,
    statuses,
    with_timer,
)


async def test_sharded_wheels_fire_each_push_once(
    make_server: Callable[..., Any],
    settings: Settings,
    valkey_cluster: LocalCluster,
    world: World,
    pool: Any,
    redis: Any,
) -> None:
    shards = 4
    owners = {
        valkey_cluster.master_of_slot(key_slot(rk.timer_keys(k)[0].encode())).port
        for k in range(shards)
    }
    assert len(owners) >= 2  # the wheels really are on different cluster shards
    sharded = with_timer(settings, wheel_shards=shards, claim_batch=5)
    servers = [await make_server(sharded) for _ in range(3)]
    base = soon(2500)
    for i in range(60):
        status, body = await schedule(
            servers[i % 3], world, f"s-{i}", at=iso(base + timedelta(milliseconds=100 * (i // 15)))
        )
        assert status == 201, body
    wheel = Wheel(redis, lease_ms=1000, batch=1, shards=shards)
    spread = [await redis.zcard(rk.timer_keys(k)[0]) for k in range(shards)]
    assert sum(spread) == 60
    assert all(n == 15 for n in spread), spread  # by schedule id mod 4

    loop = asyncio.get_running_loop()
    until = loop.time() + 30
    while (await statuses(pool, world.room_id))["fired"] < 60:
        assert loop.time() < until, await statuses(pool, world.room_id)
        await asyncio.sleep(0.05)
    counts = await pushes_in_history(redis, world.room_id)
    assert len(counts) == 60
    assert set(counts.values()) == {1}
    early = [f for f in await scheduled_frames(redis, world.room_id) if f["ts"] < f["due_ms"]]
    assert early == []
    assert await wheel.pending_count() == 0
    while await wheel.leased():  # acked just after the fired rows are committed
        assert loop.time() < until + 10
        await asyncio.sleep(0.05)
