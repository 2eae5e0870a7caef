"""Every Lua script and every multi-key command of the app runs on the real cluster: each
touches the keys of one hash tag (a cross-slot access fails there, never on one Redis)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import RedisClusterException, RedisError

from livecommerce import redis_keys as rk
from livecommerce.config import FlashSaleConfig, RoomsConfig
from livecommerce.console import signin_limit
from livecommerce.errors import RateLimited
from livecommerce.moderation import rules as moderation_rules
from livecommerce.realtime.broker import Broker, PublishItem
from livecommerce.social.flashsale import FlashStock
from livecommerce.timer.wheel import Wheel
from tests.growth.analytics.live_counters_case import count_rooms

LUA = Path(__file__).resolve().parents[2] / "livecommerce" / "lua"


async def test_every_lua_script_runs_on_the_cluster(redis: Any) -> None:
    ran: set[str] = set()
    broker = Broker(redis, RoomsConfig())
    # Rooms on all three shards (their hash tags spread over the slots).
    for room_id in (1, 2, 3, 4, 5):
        await broker.set_room_info(room_id, {"id": room_id, "state": "live"})
        pub = await broker.publish(room_id, {"type": "goods_push", "goods_id": 1},
                                   state_op="set", state_field="bubble", idempotency_key="k")  # fmt: skip
        assert pub.seq == 1
        assert pub.fresh
        again = await broker.publish(room_id, {"type": "x"}, idempotency_key="k")
        assert not again.fresh
        assert again.seq == 1
        snap = await broker.snapshot(room_id, 0)
        assert (snap.seq, snap.complete, len(snap.missed)) == (1, True, 1)
        epoch, seq = await broker.head(room_id)
        assert epoch
        assert seq == 1
        await broker.tick(room_id, "node-a", 3, 2)
    many = await broker.publish_many([PublishItem(r, {"type": "t"}) for r in (1, 2, 3, 4, 5)])
    assert all(p.seq >= 2 for p in many)
    ran |= {"publish_core", "publish", "room_info", "snapshot", "room_head", "room_tick"}
    for room_id in (1, 2, 3, 4, 5):
        comment = await broker.publish(room_id, {"type": "comment", "text": "hi"})
        deleted = await broker.delete_comment(room_id, comment.seq)
        assert deleted is not None
        assert (deleted.seq, deleted.checked, deleted.repeated) == (comment.seq + 1, True, False)
        again = await broker.delete_comment(room_id, comment.seq)
        assert again == dataclasses.replace(deleted, repeated=True)
        assert await broker.delete_comment(room_id, 1) is None  # a goods_push
    ran.add("comment_delete")

    wheel = Wheel(redis, lease_ms=5000, batch=10)
    now_ms = int(time.time() * 1000)
    assert await wheel.restore([("1:1", now_ms - 10), ("2:1", now_ms + 60_000)]) == 2
    claim = await wheel.claim()
    assert "1:1" in claim.members
    await wheel.ack(claim.members)
    await wheel.add([("3:1", now_ms + 60_000)])
    await wheel.remove(["3:1"])
    ran |= {"timer_claim", "timer_restore"}

    stock = FlashStock(redis, FlashSaleConfig())
    start = datetime.now(UTC) - timedelta(minutes=1)
    for sale_id in (1, 2, 3):
        sale = {"id": sale_id, "starts_at": start, "ends_at": start + timedelta(hours=1),
                "per_user_limit": 2, "stock": 5, "sold": 0}  # fmt: skip
        assert await stock.load(sale, [], [])  # type: ignore[arg-type]
        took = await stock.take(sale_id, 7, 1, "c1")
        assert (took.code, took.stock_left) == ("ok", 4)
        assert await stock.give_back(sale_id, "c1") == 5
    ran |= {"flashsale_load", "flashsale_take", "flashsale_return"}

    for room_id in (1, 2, 3, 4, 5):  # comment moderation: the room's copy and its mutes
        keys = [rk.room_moderation(room_id), rk.room_mutes(room_id)]
        args = [1, 9, 0, "show", '["spam"]', 60, "user:7", 0]
        assert await redis.eval(moderation_rules.LOAD_SCRIPT, 2, *keys, *args) == 1
        got = await redis.eval(moderation_rules.CHECK_SCRIPT, 2, *keys, "user:7", "")
        assert got[:4] == [b"1", b"9", b"0", b"show"]
        assert got[5] == 0  # muted until unmuted
    ran |= {"moderation_load", "moderation_check"}

    await count_rooms(redis, (1, 2, 3, 4, 5))  # the live counters: rooms on every shard
    ran.add("analytics_live_add")

    assert ran == {p.stem for p in LUA.glob("*.lua")}, "a Lua script has no cluster check here"


async def test_sign_in_limiter_keys_share_a_slot(redis: Any) -> None:
    """MGET and MULTI over the name and address counters (one hash tag)."""
    for _ in range(signin_limit.MAX_PER_NAME):
        await signin_limit.failed(redis, "alice", "10.0.0.1")
    with pytest.raises(RateLimited):
        await signin_limit.check(redis, "alice", "10.0.0.2")
    await signin_limit.succeeded(redis, "alice")
    await signin_limit.check(redis, "alice", "10.0.0.1")


async def test_a_cross_slot_script_is_refused(redis: Any) -> None:
    """The check above can fail: a script touching two rooms' keys is refused (by the cluster
    client already)."""
    script = redis.register_script("return redis.call('MGET', KEYS[1], KEYS[2])")
    with pytest.raises((RedisError, RedisClusterException)):
        await script(keys=["lc:{room:1}:seq", "lc:{room:2}:seq"])
