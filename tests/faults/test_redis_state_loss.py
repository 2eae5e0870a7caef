"""Redis losing keys without a restart (flush, a lost sequence key) and the wheel losing entries
under a surviving "built" marker: detected and answered, on the shared test Redis."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from livecommerce import keys
from livecommerce import redis_keys as rk
from livecommerce.config import Settings
from livecommerce.embedded import EmbeddedValkey
from tests.faults.conftest import RecordingViewer
from tests.faults.test_redis_faults import push_ok, schedule_at, schedule_outcomes
from tests.realtime.conftest import World
from tests.realtime.viewer import wait_until
from tests.support import AppServer


async def test_flush_while_watching_gives_connected_viewers_a_resync(
    server: AppServer, world: World, redis: Redis
) -> None:
    """FLUSHDB under connected viewers: the next frame comes after an in-band resync with a new
    epoch (the node does not drop the repeated seqs silently)."""
    v = RecordingViewer(server.ws_url(), world.room_id, world.viewer_token())
    v.start()
    await v.welcomed.wait()
    for i in range(3):
        await push_ok(server, world, i)
    await wait_until(lambda: v.have == 3)
    old_epoch = v.epoch
    await redis.flushdb()
    seq = await push_ok(server, world)
    assert seq == 1  # the stream restarted
    await wait_until(lambda: v.have == 1 and v.epoch != old_epoch)
    assert v.check_stream() == 1
    assert v.resyncs() == 1
    assert [m["type"] for m in v.stream][-2:] in (
        ["resync", "goods_push"],
        ["goods_push", "resync"],
    )
    await v.stop()


async def test_lost_sequence_key_renews_the_epoch(
    server: AppServer, world: World, redis: Redis
) -> None:
    """The seq key alone lost (state kept): a new epoch, connected viewers resync."""
    v = RecordingViewer(server.ws_url(), world.room_id, world.viewer_token())
    v.start()
    await v.welcomed.wait()
    await push_ok(server, world)
    await wait_until(lambda: v.have == 1)
    old_epoch = v.epoch
    await redis.delete(rk.room_seq(world.room_id))
    await push_ok(server, world)
    await wait_until(lambda: v.epoch != old_epoch)
    await wait_until(lambda: v.have == 1)
    assert v.check_stream() == 1
    await v.stop()


async def test_restart_renews_epoch_even_with_every_key_intact(tmp_path: Any) -> None:
    """The epoch is bound to the Redis process: a restart with all its data still renews it
    (a restore from an older snapshot cannot bring the old epoch back as current)."""
    from livecommerce.config import RoomsConfig
    from livecommerce.realtime.broker import Broker

    valkey = EmbeddedValkey(tmp_path / "v", "pw", fsync=False)
    valkey.start()
    try:
        client = Redis.from_url(valkey.url)
        broker = Broker(client, RoomsConfig())
        await broker.set_room_info(1, {"id": 1, "state": "live"})
        await broker.publish(1, {"type": "comment", "text": "a"})
        epoch, seq = await broker.head(1)
        assert (bool(epoch), seq) == (True, 1)
        assert await broker.head(1) == (epoch, 1)  # stable while Redis runs
        await client.aclose()
        await asyncio.to_thread(valkey.stop)  # clean stop: nothing lost
        await asyncio.to_thread(valkey.start)
        client = Redis.from_url(valkey.url)
        broker = Broker(client, RoomsConfig())
        new_epoch, seq = await broker.head(1)
        assert seq == 1  # the data survived (append-only file) ...
        assert new_epoch not in ("", epoch)  # ... but the epoch is new
        snap = await broker.snapshot(1, 0)
        assert snap.state["epoch"].decode() == new_epoch
        assert "room" not in snap.state  # cached room info is reloaded from PostgreSQL
        await client.aclose()
    finally:
        valkey.stop()


async def test_snapshot_of_unknown_room_creates_nothing(redis: Redis, settings: Settings) -> None:
    """A viewer asking for a room Redis does not know leaves no keys behind (room ids are
    attacker-chosen); only the room info from PostgreSQL creates the room's state."""
    from livecommerce.realtime.broker import Broker

    broker = Broker(redis, settings.rooms)
    snap = await broker.snapshot(424242, None)
    assert (snap.seq, snap.state) == (0, {})
    assert await redis.exists(rk.room_seq(424242), rk.room_state(424242)) == 0


async def test_wheel_emptied_under_built_marker_is_reconciled(
    make_server: Callable[..., Any], settings: Settings, world: World, pool: Any, redis: Redis
) -> None:
    """The wheel loses a pending push but the "built" marker survives (as after a restore from
    a snapshot): the periodic reconciliation with PostgreSQL puts it back; it fires once, late
    by at most the reconcile period."""
    period = 0.5
    srv: AppServer = await make_server(
        dataclasses.replace(
            settings, timer=dataclasses.replace(settings.timer, reconcile_seconds=period)
        )
    )
    deadline = asyncio.get_running_loop().time() + 10
    while not await redis.exists(rk.TIMER_BUILT):  # the start-up rebuild is done
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    due = datetime.now(UTC) + timedelta(milliseconds=1500)
    sid = await schedule_at(srv, world, "lost", due)
    assert await redis.zrem(rk.TIMER_WHEEL, f"{sid}:1") == 1
    deadline = asyncio.get_running_loop().time() + 10
    while (await schedule_outcomes(pool, [sid]))[sid] != "fired":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    row = await pool.fetchrow("SELECT lateness_ms FROM live_schedules WHERE id = $1", sid)
    assert row["lateness_ms"] < 1000  # put back before its due time: on time
    assert srv.app[keys.METRICS].timer_reconciled._value.get() >= 1
