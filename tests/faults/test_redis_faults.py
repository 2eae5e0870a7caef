"""Redis faults while viewers watch, pushes are published and scheduled pushes fall due.

Each test runs the real app on a private Valkey (``conftest.valkey``) and kills it, restarts it
(with its data, empty, from an older copy of its data dir) or drops the node's subscription.
Every viewer must end with every frame exactly once or an explicit ``resync``; every scheduled
push fires once (or is recorded skipped); REST calls succeed within 5 s of Redis answering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from livecommerce import keys
from livecommerce import redis_keys as rk
from livecommerce.config import Settings
from tests.faults.conftest import RecordingViewer, RestartableValkey
from tests.realtime.conftest import World, make_world
from tests.realtime.viewer import wait_until
from tests.support import AppServer, http

RECOVERY_TARGET_SECONDS = 5.0


async def push(srv: AppServer, world: World, i: int = 0) -> tuple[int, Any]:
    return await http(
        "POST", f"{srv.url}/api/rooms/{world.room_id}/push",
        json={"goods_id": world.goods_ids[i % 3]}, headers=world.host_headers(),
    )  # fmt: skip


async def push_ok(srv: AppServer, world: World, i: int = 0) -> int:
    status, body = await push(srv, world, i)
    assert status == 201, body
    return int(body["seq"])


async def schedule_at(srv: AppServer, world: World, key: str, at: datetime) -> int:
    status, body = await http(
        "POST", f"{srv.url}/api/rooms/{world.room_id}/schedules",
        json={"idempotency_key": key, "goods_id": world.goods_ids[0], "at": at.isoformat()},
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 201, body
    return int(body["id"])


async def until_answering(srv: AppServer, world: World) -> float:
    """Seconds until a push succeeds again (polled every 50 ms)."""
    start = time.monotonic()
    while True:
        status, _ = await push(srv, world)
        if status == 201:
            return time.monotonic() - start
        assert time.monotonic() - start < 30, "REST never recovered"
        await asyncio.sleep(0.05)


async def settle(srv: AppServer, world: World, viewers: list[RecordingViewer]) -> int:
    """Publish one more frame and wait until every viewer has it; that frame's seq."""
    last = await push_ok(srv, world)
    await wait_until(lambda: all(v.have == last for v in viewers), within=20)
    return last


async def schedule_outcomes(pool: Any, ids: list[int]) -> dict[int, str]:
    rows = await pool.fetch("SELECT id, status FROM live_schedules WHERE id = ANY($1)", ids)
    return {r["id"]: r["status"] for r in rows}


@pytest.mark.parametrize("mode", ["data", "empty", "older"])
async def test_valkey_killed_and_restarted_while_viewers_watch(
    make_server: Callable[..., Any],
    fault_settings: Settings,
    world: World,
    valkey: RestartableValkey,
    pool: Any,
    tmp_path: Path,
    mode: str,
) -> None:
    """Valkey killed (-9) and restarted with its data / empty / from an older copy: viewers end
    with every frame once or a resync, each scheduled push fires once, REST recovers in < 5 s,
    and a client resuming with its old epoch gets a resync, never a false `resumed`."""
    srv: AppServer = await make_server(fault_settings)
    viewers = [RecordingViewer(srv.ws_url(), world.room_id, world.viewer_token()) for _ in range(3)]
    for v in viewers:
        v.start()
    await asyncio.wait_for(asyncio.gather(*(v.welcomed.wait() for v in viewers)), 10)
    # A client that will resume after the fault with what it had before it.
    gone = RecordingViewer(srv.ws_url(), world.room_id, world.viewer_token())
    gone.start()
    await gone.welcomed.wait()

    now = datetime.now(UTC)
    sched = [
        await schedule_at(srv, world, "before", now + timedelta(milliseconds=1200)),
        await schedule_at(srv, world, "during", now + timedelta(milliseconds=2600)),
    ]
    for i in range(5):
        await push_ok(srv, world, i)
    older = tmp_path / "older"
    if mode == "older":
        await asyncio.sleep(0.2)
        # The copy has "before" still pending on the wheel (it fires later: must not fire
        # again) and lacks "after" (added later: the restored wheel is "built" without it).
        valkey.snapshot_aside(older)
    sched.append(await schedule_at(srv, world, "after", now + timedelta(milliseconds=5000)))
    for i in range(5):
        await push_ok(srv, world, i)
    await wait_until(lambda: gone.have is not None and gone.have >= 10)
    await gone.stop()
    # Let "before" fire normally, then kill Redis; "during" falls due while it is down.
    deadline = time.monotonic() + 10
    while (await schedule_outcomes(pool, sched[:1]))[sched[0]] != "fired":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.to_thread(valkey.kill)
    await asyncio.sleep(1.8)
    await asyncio.to_thread(valkey.restart, mode, older)  # (kill again is a no-op)
    restarted = time.monotonic()
    recovery = await until_answering(srv, world)
    assert recovery < RECOVERY_TARGET_SECONDS, recovery
    # Every connected viewer is told (in-band resync) without reconnecting.
    await wait_until(lambda: all(v.resyncs() >= 1 for v in viewers), within=10)
    resynced = time.monotonic() - restarted
    assert resynced < RECOVERY_TARGET_SECONDS, resynced
    # Many pooled connections at once: none may fail on first reuse.
    results = await asyncio.gather(*(push(srv, world, i) for i in range(20)))
    assert [s for s, _ in results] == [201] * 20, results

    deadline = time.monotonic() + 20
    while set((await schedule_outcomes(pool, sched)).values()) - {"fired", "skipped"}:
        assert time.monotonic() < deadline, await schedule_outcomes(pool, sched)
        await asyncio.sleep(0.1)
    assert set((await schedule_outcomes(pool, sched)).values()) == {"fired"}

    last = await settle(srv, world, viewers)
    epoch = (await srv.app[keys.REDIS].hget(rk.room_state(world.room_id), "epoch")).decode()
    for v in viewers:
        assert v.check_stream() == last
        assert v.epoch == epoch
        assert v.resyncs() >= 1  # the stream could have been reset: said explicitly
        assert v.closes == []  # ... in-band: nobody had to reconnect
        fired = Counter(v.schedule_ids())
        assert all(n == 1 for n in fired.values()), fired  # never a scheduled push twice
        assert sched[2] in fired  # fired after recovery: every viewer saw it
    # The client that left before the fault resumes with its old epoch: resync, not resumed.
    assert last > (gone.have or 0)
    back = RecordingViewer(srv.ws_url(), world.room_id, world.viewer_token())
    back.have, back.epoch = gone.have, gone.epoch
    back.start()
    await back.welcomed.wait()
    assert back.stream[0]["type"] == "resync"
    assert back.stream[0]["epoch"] == epoch
    for v in [*viewers, back]:
        await v.stop()
    print(
        f"\n[{mode}] after Valkey answered again: REST in {recovery * 1000:.0f} ms,"
        f" all viewers resynced in {resynced * 1000:.0f} ms"
    )


async def test_pubsub_drop_fills_from_what_each_viewer_has(
    make_server: Callable[..., Any],
    fault_settings: Settings,
    pool: Any,
    vredis: Redis,
) -> None:
    """`CLIENT KILL TYPE pubsub` while frames are published: a room this node has delivered to
    and a quiet room whose first viewer got no frame yet both get every frame once, no resync."""
    busy, quiet = await make_world(pool), await make_world(pool)
    srv: AppServer = await make_server(
        dataclasses.replace(
            fault_settings, rooms=dataclasses.replace(fault_settings.rooms, tick_seconds=60.0)
        )
    )
    b = RecordingViewer(srv.ws_url(), busy.room_id, busy.viewer_token())
    q = RecordingViewer(srv.ws_url(), quiet.room_id, quiet.viewer_token())
    for v in (b, q):
        v.start()
        await v.welcomed.wait()
    await push_ok(srv, busy)
    await wait_until(lambda: b.have == 1)
    node = srv.app[keys.NODE]
    subscribed = node.metrics.subscriptions._value.get()
    killed = await vredis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed) >= 1
    for i in range(4):  # published while the node is not listening
        await push_ok(srv, busy, i)
        await push_ok(srv, quiet, i)
    await wait_until(lambda: node.metrics.subscriptions._value.get() > subscribed)
    last_b, last_q = await push_ok(srv, busy), await push_ok(srv, quiet)
    await wait_until(lambda: b.have == last_b and q.have == last_q)
    for v, last in ((b, last_b), (q, last_q)):
        assert v.check_stream() == last
        assert v.resyncs() == 0
        assert [m["seq"] for m in v.stream if m.get("type") == "goods_push"][-5:] == list(
            range(last - 4, last + 1)
        )
        await v.stop()


async def test_room_ended_while_the_subscription_was_down_closes_its_viewers_4410(
    make_server: Callable[..., Any],
    fault_settings: Settings,
    world: World,
    vredis: Redis,
) -> None:
    """The `room_state` `ended` frame the node gets from history after its subscription broke
    is followed by close 4410, like a live one (docs/protocol.md) — the viewers were left open
    on an ended room, and a client that does not stop by itself waited there forever."""
    srv: AppServer = await make_server(fault_settings)
    v = RecordingViewer(srv.ws_url(), world.room_id, world.viewer_token())
    v.start()
    await v.welcomed.wait()
    await push_ok(srv, world)
    node = srv.app[keys.NODE]
    subscribed = node.metrics.subscriptions._value.get()
    killed = await vredis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed) >= 1
    status, body = await http(
        "POST", f"{srv.url}/api/rooms/{world.room_id}/end", headers=world.host_headers()
    )
    assert status == 200, body
    await wait_until(lambda: node.metrics.subscriptions._value.get() > subscribed)
    await wait_until(lambda: v.closes == [4410], within=5)
    assert v.stream[-1]["type"] == "room_state", v.stream[-3:]
    assert v.stream[-1]["state"] == "ended"
    v.check_stream()
    await v.stop()
