"""The timer wheel: scheduled pushes fire on time, exactly once, across racing and dying dispatchers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from livecommerce import keys
from livecommerce import redis_keys as rk
from livecommerce.config import Settings
from livecommerce.timer import service
from livecommerce.timer.dispatcher import Dispatcher
from livecommerce.timer.wheel import Wheel
from tests.realtime.conftest import World
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import AppServer, http


def iso(dt: datetime) -> str:
    return dt.isoformat()


def soon(ms: int) -> datetime:
    return datetime.now(UTC) + timedelta(milliseconds=ms)


# A valid due time for the validation cases (within the 366-day horizon).
LATER = iso(soon(30 * 86_400_000))


def with_timer(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, timer=dataclasses.replace(settings.timer, **changes))


async def schedule(srv: AppServer, world: World, key: str, **body: Any) -> tuple[int, Any]:
    body.setdefault("goods_id", world.goods_ids[0])
    return await http(
        "POST", f"{srv.url}/api/rooms/{world.room_id}/schedules",
        json={"idempotency_key": key, **body}, headers=world.host_headers(),
    )  # fmt: skip


async def scheduled_frames(redis: Any, room_id: int) -> list[dict[str, Any]]:
    """The scheduled goods_push frames in the room history."""
    items = await redis.zrange(rk.room_history(room_id), 0, -1)
    frames = [orjson.loads(m.split(b"|", 1)[1]) for m in items]
    return [f for f in frames if f["type"] == "goods_push" and "schedule_id" in f]


async def pushes_in_history(redis: Any, room_id: int) -> Counter[int]:
    """How many goods_push frames the room history holds per schedule id."""
    return Counter(f["schedule_id"] for f in await scheduled_frames(redis, room_id))


async def statuses(pool: Any, room_id: int) -> Counter[str]:
    rows = await pool.fetch("SELECT status FROM live_schedules WHERE room_id = $1", room_id)
    return Counter(r["status"] for r in rows)


async def test_scheduled_push_reaches_viewer_and_is_recorded(
    server: AppServer, world: World, pool: Any
) -> None:
    """A push scheduled 400 ms ahead reaches a connected viewer once; fired_at and lateness are recorded."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    status, row = await schedule(server, world, "k1", at=iso(soon(400)), show_seconds=20)
    assert status == 201, row
    await wait_until(lambda: len(v.of_type("goods_push")) == 1)
    frame = v.of_type("goods_push")[0]
    assert frame["schedule_id"] == row["id"]
    assert frame["show_seconds"] == 20
    assert frame["ts"] >= frame["due_ms"]
    # The frame goes out inside the dispatcher's transaction; the record commits right after.
    deadline = asyncio.get_running_loop().time() + 10
    while (rec := await pool.fetchrow("SELECT * FROM live_schedules WHERE id = $1", row["id"]))[
        "status"
    ] != "fired":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert rec["publish_seq"] == frame["seq"]
    assert rec["lateness_ms"] == frame["ts"] - frame["due_ms"]
    assert rec["fired_at"] is not None
    _, text = await http("GET", server.url + "/metrics")
    assert 'livecommerce_timer_pushes_total{outcome="fired"} 1.0' in text
    assert "livecommerce_timer_lateness_seconds_bucket" in text
    await v.close()


async def test_three_racing_dispatchers_fire_each_push_exactly_once(
    make_server: Callable[..., Any], settings: Settings, world: World, pool: Any, redis: Any
) -> None:
    """Three dispatchers on one Redis, 150 pushes in bursts of identical timestamps: each fires once,
    never before its due time, whatever each dispatcher's look-ahead (0, 20 and 50 ms)."""
    srv: AppServer = await make_server(with_timer(settings, claim_batch=7))
    app = srv.app
    extra = [
        Dispatcher(app[keys.PG_POOL], app[keys.REDIS],
                   Wheel(app[keys.REDIS], lease_ms=10_000, batch=5, lookahead_ms=ahead),
                   app[keys.BROKER], with_timer(settings, lookahead_ms=ahead).timer,
                   app[keys.METRICS])
        for ahead in (0, 50)
    ]  # fmt: skip
    tasks = [asyncio.create_task(d.run()) for d in extra]
    try:
        base = soon(3000)  # 150 creates must all land before the first burst, even on a busy box
        for i in range(150):
            status, body = await schedule(
                srv, world, f"burst-{i}", at=iso(base + timedelta(milliseconds=100 * (i // 30)))
            )
            assert status == 201, body

        async def all_done() -> bool:
            return (await statuses(pool, world.room_id))["fired"] == 150

        deadline = asyncio.get_running_loop().time() + 30
        while not await all_done():
            assert asyncio.get_running_loop().time() < deadline, await statuses(pool, world.room_id)
            await asyncio.sleep(0.05)
        counts = await pushes_in_history(redis, world.room_id)
        assert len(counts) == 150
        assert set(counts.values()) == {1}
        early = [f for f in await scheduled_frames(redis, world.room_id) if f["ts"] < f["due_ms"]]
        assert early == []
        seqs = await pool.fetch(
            "SELECT publish_seq FROM live_schedules WHERE room_id = $1", world.room_id
        )
        assert len({r["publish_seq"] for r in seqs}) == 150
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def test_dispatcher_killed_after_claim_push_delivered_by_another(
    make_server: Callable[..., Any], settings: Settings, world: World, pool: Any, redis: Any
) -> None:
    """A node that claims and dies before publishing: another node delivers after the lease, once.
    A node that dies after publishing but before recording: the retry publishes nothing new."""
    srv: AppServer = await make_server(with_timer(settings, enabled=False, lease_seconds=1.0))
    app = srv.app
    wheel = Wheel(app[keys.REDIS], lease_ms=1000, batch=10)
    _, first = await schedule(srv, world, "dies-before", at=iso(soon(200)))
    _, second = await schedule(srv, world, "dies-after", at=iso(soon(200)))
    await asyncio.sleep(0.4)
    claim = await wheel.claim()  # the dying node's claim: both members leased, nothing delivered
    assert len(claim.members) == 2
    # The "dies-after" node got as far as publishing (same idempotency key as a real dispatcher).
    from livecommerce.rooms.service import goods_push_body

    goods = await pool.fetchrow(
        "SELECT id, title, price_fen, stock, images FROM goods WHERE id = $1", world.goods_ids[0]
    )
    early = await app[keys.BROKER].publish(
        world.room_id, goods_push_body(goods, 30, schedule_id=second["id"], due_ms=0),
        state_op="set", state_field="bubble", idempotency_key=f"sched:{second['id']}:1",
    )  # fmt: skip
    assert (await wheel.claim()).members == []  # leased, not yet expired
    survivor = Dispatcher(
        app[keys.PG_POOL],
        app[keys.REDIS],
        wheel,
        app[keys.BROKER],
        app[keys.SETTINGS].timer,
        app[keys.METRICS],
    )
    task = asyncio.create_task(survivor.run())
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while (await statuses(pool, world.room_id))["fired"] != 2:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await pushes_in_history(redis, world.room_id) == Counter(
        {first["id"]: 1, second["id"]: 1}
    )
    rec = await pool.fetchrow(
        "SELECT publish_seq, lateness_ms FROM live_schedules WHERE id = $1", second["id"]
    )
    assert rec["publish_seq"] == early.seq
    late = await pool.fetchval("SELECT lateness_ms FROM live_schedules WHERE id = $1", first["id"])
    assert late >= 800  # waited out the dead node's lease


async def test_redis_flushed_mid_schedule_rebuilds_without_loss_or_double(
    server: AppServer, world: World, pool: Any, redis: Any
) -> None:
    """Redis loses everything while 20 pushes are pending: the wheel is rebuilt and each fires once."""
    base = soon(1500)
    for i in range(20):
        status, _ = await schedule(
            server, world, f"f-{i}", at=iso(base + timedelta(milliseconds=50 * i))
        )
        assert status == 201
    await redis.flushdb()
    deadline = asyncio.get_running_loop().time() + 20
    while (await statuses(pool, world.room_id))["fired"] != 20:
        assert asyncio.get_running_loop().time() < deadline, await statuses(pool, world.room_id)
        await asyncio.sleep(0.05)
    counts = await pushes_in_history(redis, world.room_id)
    assert len(counts) == 20
    assert set(counts.values()) == {1}


async def test_overdue_after_outage_fires_late_or_is_skipped(
    make_server: Callable[..., Any], settings: Settings, world: World, pool: Any, redis: Any
) -> None:
    """Pushes that fell due while everything was down: within max_lateness fire (late), beyond it skip."""
    srv: AppServer = await make_server(
        with_timer(settings, max_lateness_seconds=30.0, late_after_ms=1000)
    )
    ids = {}
    for name, ago in (("recent", 2), ("ancient", 120)):
        ids[name] = await pool.fetchval(
            """INSERT INTO live_schedules (room_id, goods_id, show_seconds, due_at, idempotency_key)
               VALUES ($1, $2, 30, now() - $3 * interval '1 second', $4) RETURNING id""",
            world.room_id, world.goods_ids[0], ago, name,
        )  # fmt: skip
    await redis.delete(rk.TIMER_BUILT)  # as after a Redis restart
    srv.app[keys.DISPATCHER].wake.set()  # its next claim finds the marker gone and rebuilds
    deadline = asyncio.get_running_loop().time() + 15
    while (await statuses(pool, world.room_id))["pending"]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    recent = await pool.fetchrow("SELECT * FROM live_schedules WHERE id = $1", ids["recent"])
    ancient = await pool.fetchrow("SELECT * FROM live_schedules WHERE id = $1", ids["ancient"])
    assert (recent["status"], recent["late"]) == ("fired", True)
    assert recent["lateness_ms"] >= 2000
    assert (ancient["status"], ancient["skip_reason"]) == ("skipped", "too_late")
    assert await pushes_in_history(redis, world.room_id) == Counter({ids["recent"]: 1})


async def test_cancel_and_reschedule_at_the_boundary(
    server: AppServer, world: World, pool: Any, redis: Any
) -> None:
    """A cancel/reschedule committed before due never lets the old time fire; racing the due time,
    the answer and the outcome always agree (200 -> never fired, 409 already_fired -> fired once)."""
    h = world.host_headers()
    base_url = f"{server.url}/api/rooms/{world.room_id}/schedules"
    # Committed 150 ms before due (outside the 20 ms look-ahead): never fires.
    _, early = await schedule(server, world, "early", at=iso(soon(400)))
    await asyncio.sleep(0.25)
    status, body = await http("DELETE", f"{base_url}/{early['id']}", headers=h)
    assert (status, body["status"]) == (200, "cancelled")
    # Rescheduled 150 ms before due to +1.5 s: fires once, at the new time only.
    _, moved = await schedule(server, world, "moved", at=iso(soon(400)))
    await asyncio.sleep(0.25)
    new_at = soon(1500)
    status, body = await http(
        "PATCH", f"{base_url}/{moved['id']}", json={"at": iso(new_at)}, headers=h
    )
    assert (status, body["version"]) == (200, 2)
    # Cancels racing their due time.
    racing = []
    for i in range(10):
        _, row = await schedule(server, world, f"race-{i}", at=iso(soon(400)))
        racing.append(row["id"])
    await asyncio.sleep(0.39)
    answers = await asyncio.gather(
        *(http("DELETE", f"{base_url}/{sid}", headers=h) for sid in racing)
    )
    await asyncio.sleep(2.0)
    counts = await pushes_in_history(redis, world.room_id)
    assert early["id"] not in counts
    assert counts[moved["id"]] == 1
    fired = await pool.fetchrow("SELECT fired_at FROM live_schedules WHERE id = $1", moved["id"])
    assert fired["fired_at"] >= new_at - timedelta(milliseconds=5)
    for sid, (status, body) in zip(racing, answers, strict=True):
        if status == 200:
            assert counts[sid] == 0
        else:
            assert (status, body["error"]["code"]) == (409, "already_fired")
            assert counts[sid] == 1


async def test_offsets_resolve_at_start_and_follow_a_corrected_start(
    server: AppServer, world: World, pool: Any, redis: Any
) -> None:
    """'+N s from start' waits for the start, then fires N s after it; correcting the start moves it."""
    h = world.host_headers()
    status, room = await http(
        "POST",
        server.url + "/api/rooms",
        json={"title": "later", "planned_start_at": iso(soon(3_600_000))},
        headers=h,
    )
    assert status == 201
    rid = room["id"]
    await http(
        "POST",
        f"{server.url}/api/rooms/{rid}/goods",
        json={"goods_ids": world.goods_ids},
        headers=h,
    )
    url = f"{server.url}/api/rooms/{rid}/schedules"
    s1, a = await http(
        "POST",
        url,
        json={"goods_id": world.goods_ids[0], "offset_seconds": 0.5, "idempotency_key": "a"},
        headers=h,
    )
    s2, b = await http(
        "POST",
        url,
        json={"goods_id": world.goods_ids[1], "offset_seconds": 600, "idempotency_key": "b"},
        headers=h,
    )
    assert (s1, s2) == (201, 201)
    assert a["due_at"] is None
    await asyncio.sleep(0.8)
    assert await pushes_in_history(redis, rid) == Counter()  # not started: nothing fires
    assert (await http("POST", f"{server.url}/api/rooms/{rid}/start", headers=h))[0] == 200
    deadline = asyncio.get_running_loop().time() + 10
    while (await pushes_in_history(redis, rid))[a["id"]] != 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    # The start was really 599.5 s earlier: the +600 s push is due in ~0.5 s now.
    started = await pool.fetchval("SELECT started_at FROM live_rooms WHERE id = $1", rid)
    status, body = await http(
        "PUT",
        f"{server.url}/api/rooms/{rid}/started_at",
        json={"started_at": iso(started - timedelta(seconds=599.5))},
        headers=h,
    )
    assert (status, body["rescheduled"]) == (200, 1)
    deadline = asyncio.get_running_loop().time() + 10
    while (await pushes_in_history(redis, rid))[b["id"]] != 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    rows = await pool.fetch(
        "SELECT status, version FROM live_schedules WHERE room_id = $1 ORDER BY id", rid
    )
    assert [(r["status"], r["version"]) for r in rows] == [("fired", 2), ("fired", 3)]


async def test_start_correction_validation(server: AppServer, world: World) -> None:
    """started_at must be an RFC 3339 time with an offset that fits in UTC (400 otherwise)."""
    url = f"{server.url}/api/rooms/{world.room_id}/started_at"
    for bad in ("0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00", "soon", None):
        status, body = await http(
            "PUT", url, json={"started_at": bad}, headers=world.host_headers()
        )
        assert (status, body["error"]["field"]) == (400, "started_at"), bad


@pytest.mark.parametrize(
    ("body", "status", "field_or_code"),
    [
        ({"at": "2000-01-01T00:00:00+00:00"}, 400, "at"),
        ({}, 400, "at"),
        ({"at": LATER, "offset_seconds": 5}, 400, "at"),
        ({"at": "2027-01-01T00:00:00"}, 400, "at"),
        ({"at": "soon"}, 400, "at"),
        ({"at": "9999-12-31T23:59:59-14:00"}, 400, "at"),  # overflows in UTC: not a 500
        ({"at": "9999-01-01T00:00:00+00:00"}, 400, "at"),  # a typo, not a schedule
        ({"at": iso(soon(367 * 86_400_000))}, 400, "at"),  # over the 366-day horizon
        ({"offset_seconds": -1}, 400, "offset_seconds"),
        ({"offset_seconds": "5"}, 400, "offset_seconds"),
        ({"offset_seconds": 1}, 400, "offset_seconds"),  # started long ago: start + 1 s is past
        ({"at": LATER, "goods_id": 0}, 400, "goods_id"),
        ({"at": LATER, "show_seconds": 0}, 400, "show_seconds"),
        ({"at": LATER, "goods_id": 999999}, 404, "goods_not_in_room"),
    ],
)
async def test_schedule_validation(
    server: AppServer,
    world: World,
    pool: Any,
    body: dict[str, Any],
    status: int,
    field_or_code: str,
) -> None:
    """Bad schedules get clear 4xx errors naming the field or the reason; nothing is stored."""
    await pool.execute(
        "UPDATE live_rooms SET started_at = now() - interval '1 hour' WHERE id = $1", world.room_id
    )
    got, resp = await schedule(server, world, "v", **body)
    assert got == status, resp
    assert field_or_code in (resp["error"].get("field"), resp["error"]["code"])
    assert await pool.fetchval("SELECT count(*) FROM live_schedules") == 0


async def test_a_schedule_cannot_be_moved_past_the_horizon(
    server: AppServer, world: World, pool: Any
) -> None:
    """PATCH checks the due time like POST: year 9999 or 367 days ahead is a 400 on ``at``
    and the schedule keeps its time; 365 days ahead is fine."""
    status, row = await schedule(server, world, "far", at=iso(soon(60_000)))
    assert status == 201, row
    url = f"{server.url}/api/rooms/{world.room_id}/schedules/{row['id']}"
    for bad in ("9999-01-01T00:00:00+00:00", iso(soon(367 * 86_400_000))):
        status, body = await http("PATCH", url, json={"at": bad}, headers=world.host_headers())
        assert (status, body["error"]["field"]) == (400, "at"), body
        assert "366 days ahead" in body["error"]["message"]
    assert await pool.fetchval("SELECT version FROM live_schedules WHERE id = $1", row["id"]) == 1
    status, body = await http(
        "PATCH", url, json={"at": iso(soon(365 * 86_400_000))}, headers=world.host_headers()
    )
    assert (status, body["version"]) == (200, 2), body


async def test_schedule_auth_duplicates_and_unknowns(
    server: AppServer, world: World, pool: Any
) -> None:
    """Viewer tokens 403, no token 401, other hosts / unknown rooms 404, replayed key 409, ended room 409."""
    url = f"{server.url}/api/rooms/{world.room_id}/schedules"
    body = {"goods_id": world.goods_ids[0], "at": iso(soon(60_000)), "idempotency_key": "dup"}
    assert (
        await http(
            "POST", url, json=body, headers={"Authorization": f"Bearer {world.viewer_token()}"}
        )
    )[0] == 403
    assert (await http("POST", url, json=body))[0] == 401
    assert (await http("GET", url))[0] == 401
    assert (
        await http(
            "POST", url, json=body, headers={"Authorization": f"Bearer {world.other_host_token}"}
        )
    )[0] == 404
    assert (
        await http(
            "POST",
            f"{server.url}/api/rooms/424242/schedules",
            json=body,
            headers=world.host_headers(),
        )
    )[0] == 404
    assert (await http("POST", url, json=body, headers=world.host_headers()))[0] == 201
    status, resp = await http("POST", url, json=body, headers=world.host_headers())
    assert (status, resp["error"]["code"]) == (409, "duplicate_schedule")
    status, resp = await http(
        "POST", url, json={**body, "idempotency_key": "bad key!"}, headers=world.host_headers()
    )
    assert (status, resp["error"]["field"]) == (400, "idempotency_key")
    status, resp = await http(
        "POST",
        url,
        data=b"{x",
        headers={**world.host_headers(), "Content-Type": "application/json"},
    )
    assert status == 400
    status, listed = await http("GET", url, headers=world.host_headers())
    assert status == 200
    assert [s["idempotency_key"] for s in listed["schedules"]] == ["dup"]
    sid = listed["schedules"][0]["id"]
    assert (await http("DELETE", f"{url}/{sid}", headers=world.host_headers()))[0] == 200
    status, resp = await http("DELETE", f"{url}/{sid}", headers=world.host_headers())
    assert (status, resp["error"]["code"]) == (409, "already_cancelled")
    assert (await http("DELETE", f"{url}/999999", headers=world.host_headers()))[0] == 404
    await pool.execute("UPDATE live_rooms SET state = 'ended' WHERE id = $1", world.room_id)
    status, resp = await http(
        "POST", url, json={**body, "idempotency_key": "late"}, headers=world.host_headers()
    )
    assert (status, resp["error"]["code"]) == (409, "room_ended")


async def test_many_pending_pushes_cost_nothing_while_idle(
    server: AppServer, world: World, pool: Any
) -> None:
    """2,000 pending pushes far in the future: one wheel entry each, and the dispatcher sleeps."""
    wheel = server.app[keys.WHEEL]
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO live_schedules (room_id, goods_id, show_seconds, due_at, idempotency_key)"
            " VALUES ($1, $2, 30, now() + interval '1 day', $3)",
            [(world.room_id, world.goods_ids[0], f"idle-{i}") for i in range(2000)],
        )
    await wheel.add(await service.wheel_entries(pool))
    assert await wheel.pending_count() == 2000
    claim = await wheel.claim()
    assert claim.members == []
    assert claim.next_due_ms is not None
    assert claim.next_due_ms - claim.now_ms > 3_600_000


async def test_dispatcher_stops_whenever_it_is_cancelled(server: AppServer) -> None:
    """Cancelled at random points of its loop (mostly inside Redis calls), a dispatcher always
    stops. redis-py can swallow a cancel on Python 3.11; before ``aio.check_cancelled`` about
    5 % of these cancels left it running until its next wake-up."""
    app = server.app
    stuck = 0
    for _ in range(200):
        d = Dispatcher(
            app[keys.PG_POOL], app[keys.REDIS], app[keys.WHEEL], app[keys.BROKER],
            app[keys.SETTINGS].timer, app[keys.METRICS],
        )  # fmt: skip
        task = asyncio.create_task(d.run())
        await asyncio.sleep(random.random() * 0.03)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        if not done:
            stuck += 1
            task.cancel()
            await asyncio.wait([task], timeout=5)
    assert stuck == 0


async def test_push_due_after_the_room_ended_is_skipped_room_ended(
    server: AppServer, world: World, pool: Any, redis: Any
) -> None:
    """A push scheduled in a live room that ends before it falls due is recorded skipped with
    the reason ``room_ended`` (not ``room_not_live``, which is for a room not started yet) and
    never published."""
    status, sched = await schedule(server, world, "after-end", at=iso(soon(800)))
    assert status == 201, sched
    status, _ = await http(
        "POST", f"{server.url}/api/rooms/{world.room_id}/end", json={},
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200
    deadline = asyncio.get_running_loop().time() + 15
    while (await statuses(pool, world.room_id))["pending"]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    row = await pool.fetchrow(
        "SELECT status, skip_reason, publish_seq FROM live_schedules WHERE id = $1", sched["id"]
    )
    assert (row["status"], row["skip_reason"], row["publish_seq"]) == (
        "skipped",
        "room_ended",
        None,
    )
    assert await pushes_in_history(redis, world.room_id) == Counter()
