"""POST /api/events over real HTTP on real PostgreSQL: validation, skew, dedup, buffer, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime

import aiohttp
import asyncpg

from livecommerce import keys
from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.growth.analytics.partitions import partition_name
from tests.growth.analytics.conftest import event, stored_ids, user_headers, viewer_headers
from tests.realtime.conftest import World
from tests.support import AppServer, http, start_app, stop_app


async def test_batch_stored_with_identity_from_token(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A valid batch is stored, attributed to the token's user (never to a body field)."""
    evs = [event("goods_impression", room_id=world.room_id, goods_id=world.goods_ids[0],
                 page="pages/live/live", ts=int(time.time() * 1000)),
           event("page_view", page="pages/index")]  # fmt: skip
    status, body = await http(
        "POST", server.url + "/api/events", json={"events": evs}, headers=user_headers(42)
    )
    assert status == 200, body
    assert isinstance(body, dict)
    assert (body["accepted"], body["stored"], body["duplicates"]) == (2, 2, 0)
    rows = await pool.fetch("SELECT actor, user_id, source, page FROM analytics_events")
    assert {(r["actor"], r["user_id"], r["source"]) for r in rows} == {("user:42", 42, "client")}


async def test_retried_batch_stored_once(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """The same batch sent three times (a retry after a lost answer) is stored once."""
    evs = [event("bubble_click", room_id=world.room_id, push_seq=7) for _ in range(20)]
    answers = await asyncio.gather(
        *(
            http(
                "POST",
                server.url + "/api/events",
                json={"events": evs},
                headers=viewer_headers(world),
            )
            for _ in range(3)
        )
    )
    assert [s for s, _ in answers] == [200, 200, 200]
    assert sum(b["stored"] for _, b in answers) == 20  # type: ignore[index]
    assert sum(b["duplicates"] for _, b in answers) == 40  # type: ignore[index]
    ids = await stored_ids(pool)
    live = await server.app[keys.ANALYTICS_LIVE].read(world.room_id)
    assert live["events"] == {"bubble_click": 20}  # the live counters count each event once
    assert len(ids) == 20
    assert Counter(ids).most_common(1)[0][1] == 1
    # Within one batch too.
    dup = event("share", room_id=world.room_id)
    status, body = await http(
        "POST", server.url + "/api/events", json={"events": [dup, dup]},
        headers=viewer_headers(world),
    )  # fmt: skip
    assert status == 200
    assert body["stored"] == 1
    assert body["duplicates"] == 1
    live = await server.app[keys.ANALYTICS_LIVE].read(world.room_id)
    assert live["events"]["share"] == 1


async def test_per_event_rejections(server: AppServer, world: World, pool: asyncpg.Pool) -> None:
    """Bad UUIDs, unknown types, oversized props, bad or missing fields: rejected one by one."""
    good = event("custom:coupon_open")
    evs = [
        {"id": "not-a-uuid", "type": "page_view"},
        event("made_up"),
        event("share", props={"blob": "x" * 5000}),
        event("share", room_id=-1),
        {"type": "share"},
        "not an object",
        good,
    ]
    status, body = await http(
        "POST", server.url + "/api/events", json={"events": evs}, headers=viewer_headers(world)
    )
    assert status == 200, body
    assert isinstance(body, dict)
    codes = {r["index"]: r["code"] for r in body["rejected"]}  # type: ignore[union-attr]
    assert codes == {
        0: "bad_uuid", 1: "unknown_type", 2: "too_large", 3: "invalid", 4: "invalid", 5: "invalid"
    }  # fmt: skip
    assert body["stored"] == 1
    assert await stored_ids(pool) == [good["id"]]


async def test_oversized_batches(make_server, world: World, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Events past max_batch_events are rejected per event; a body past max_batch_bytes is 413."""
    small = dataclasses.replace(
        settings,
        analytics=dataclasses.replace(settings.analytics, max_batch_events=3, max_batch_bytes=4096),
    )
    server = await make_server(small)
    evs = [event() for _ in range(5)]
    status, body = await http(
        "POST", server.url + "/api/events", json={"events": evs}, headers=viewer_headers(world)
    )
    assert status == 200
    assert body["stored"] == 3
    assert [r["code"] for r in body["rejected"]] == ["over_batch_limit"] * 2  # type: ignore[index]
    big = [event(props={"k": "v" * 1000}) for _ in range(3)]
    big += [event(page="p" * 250) for _ in range(0)]
    status, body = await http(
        "POST", server.url + "/api/events", json={"events": big * 2}, headers=viewer_headers(world)
    )
    assert status == 413, body


async def test_skew_corrected_and_far_times_clamped(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A client clock 1 h slow is corrected via sent_at; a time a year ahead is clamped, flagged."""
    now = int(time.time() * 1000)
    slow = now - 3_600_000
    ok, far = event("page_view", ts=slow - 5000), event("page_view", ts=slow + 365 * 86_400_000)
    status, body = await http(
        "POST", server.url + "/api/events", json={"events": [ok, far], "sent_at": slow},
        headers=viewer_headers(world),
    )  # fmt: skip
    assert status == 200
    assert body["clamped"] == 1
    assert abs(body["offset_ms"] - 3_600_000) < 5000  # type: ignore[index]
    rows = {
        str(r["event_id"]): r
        for r in await pool.fetch(
            "SELECT event_id, clamped, (extract(epoch FROM occurred_at) * 1000)::bigint AS ms"
            " FROM analytics_events"
        )
    }
    assert abs(rows[ok["id"]]["ms"] - (now - 5000)) < 5000
    assert not rows[ok["id"]]["clamped"]
    assert rows[far["id"]]["clamped"]
    assert rows[far["id"]]["ms"] <= now + 3_600_000 + 5000


async def test_acknowledged_only_after_commit(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """Crash guarantee: when an answer arrives its events are already committed (visible to
    another connection), so a crash right after it loses nothing acknowledged."""
    headers = viewer_headers(world)

    async def one() -> None:
        evs = [event("page_view") for _ in range(50)]
        status, _ = await http(
            "POST", server.url + "/api/events", json={"events": evs}, headers=headers
        )
        assert status == 200
        got = await pool.fetchval(
            "SELECT count(*) FROM analytics_events WHERE event_id = ANY($1::uuid[])",
            [uuid.UUID(e["id"]) for e in evs],
        )
        assert got == 50

    await asyncio.gather(*(one() for _ in range(20)))


async def test_full_buffer_answers_503(make_server, world: World, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """When the writer already holds buffer_max_events, a batch gets 503 + Retry-After."""
    tiny = dataclasses.replace(
        settings, analytics=dataclasses.replace(settings.analytics, buffer_max_events=5)
    )
    server = await make_server(tiny)
    writer = server.app[keys.ANALYTICS_WRITER]
    writer.buffered = 5  # as if five events were waiting for their COPY
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                server.url + "/api/events",
                json={"events": [event()]},
                headers=viewer_headers(world),
            ) as resp,
        ):
            body = await resp.json()
            assert resp.status == 503
            assert resp.headers["Retry-After"].isdigit()
            assert body["error"]["code"] == "buffer_full"
    finally:
        writer.buffered = 0


async def test_shutdown_during_burst_loses_nothing_acknowledged(
    settings: Settings, world: World, pool: asyncpg.Pool
) -> None:
    """Stop the server in the middle of a burst: every acknowledged event is stored, once."""
    slow = dataclasses.replace(
        settings, analytics=dataclasses.replace(settings.analytics, flush_interval_ms=200)
    )
    server = await start_app(create_app(slow))
    headers = viewer_headers(world)
    acked: list[str] = []
    sent: list[str] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in range(30):
            evs = [event("page_view") for _ in range(40)]
            sent.extend(e["id"] for e in evs)
            try:
                async with session.post(
                    server.url + "/api/events", json={"events": evs}, headers=headers
                ) as resp:
                    if resp.status == 200:
                        acked.extend(e["id"] for e in evs)
            except aiohttp.ClientError:
                return

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(10)]
        await asyncio.sleep(0.4)
        await stop_app(server)
        await asyncio.gather(*tasks, return_exceptions=True)
    stored = await stored_ids(pool)
    assert acked, "the burst was stopped before any answer"
    assert set(acked) <= set(stored)
    assert len(stored) == len(set(stored))


async def test_well_formed_batch_rejects_unknown_types_too(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A batch whose events are all well-formed (the one-pass decode) still rejects unknown
    types and oversized props one by one."""
    good = event("add_to_cart", goods_id=world.goods_ids[0], variants={"exp1": "b"})
    evs = [good, event("nope"), event("share", props={"k": "v" * 3000})]
    status, body = await http(
        "POST", server.url + "/api/events", json={"events": evs}, headers=viewer_headers(world)
    )
    assert status == 200, body
    assert isinstance(body, dict)
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "unknown_type"),
        (2, "too_large"),
    ]  # type: ignore[union-attr]
    assert await stored_ids(pool) == [good["id"]]
    assert await pool.fetchval("SELECT variants->>'exp1' FROM analytics_events") == "b"


async def test_a_day_that_cannot_be_made_answers_503(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """Today's partition gone and not makeable now (maintenance holds the lock): POST
    /api/events is 503 ``unavailable`` with Retry-After, nothing stored; once the partition can
    be made, the same batch is stored."""
    writer = server.app[keys.ANALYTICS_WRITER]
    make = writer.ensure_days

    async def lock_timeout(days: set[date]) -> None:
        raise asyncpg.LockNotAvailableError("canceling statement due to lock timeout")

    await pool.execute(f"DROP TABLE {partition_name(datetime.now(UTC).date())}")
    writer.ensure_days = lock_timeout
    evs = [event("page_view") for _ in range(3)]
    async with aiohttp.ClientSession() as s:
        async with s.post(
            server.url + "/api/events", json={"events": evs}, headers=viewer_headers(world)
        ) as resp:
            body = await resp.json()
            assert resp.status == 503, body
            assert body["error"]["code"] == "unavailable"
            assert resp.headers["Retry-After"].isdigit()
        assert await stored_ids(pool) == []
        writer.ensure_days = make
        async with s.post(
            server.url + "/api/events", json={"events": evs}, headers=viewer_headers(world)
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["stored"] == 3
