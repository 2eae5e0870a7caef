"""Trying to break the analytics writer (2026-11-30): odd ids, races, partitions, cancellation.

Real PostgreSQL and Valkey; two :class:`Writer` objects on one database stand for two nodes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest
import websockets

from livecommerce.config import Settings
from livecommerce.db import close_pool
from livecommerce.growth.analytics import partitions
from livecommerce.growth.analytics.events import Row
from livecommerce.growth.analytics.writer import EnsureDays, Writer, create_writer_pool
from tests.growth.analytics.conftest import stored_ids, viewer_headers
from tests.growth.analytics.test_writer import row
from tests.realtime.conftest import World
from tests.support import AppServer, http


@pytest.fixture
async def writer_pool(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    async with pool.acquire() as conn:
        await partitions.create_partition(conn, datetime.now(UTC).date())
    p = await create_writer_pool(settings.database, 4)
    yield p
    await close_pool(p)


def ensurer(pool: asyncpg.Pool, made: list[set[date]] | None = None) -> EnsureDays:
    """An ``ensure_days`` that makes the partitions (and notes the days asked for)."""

    async def ensure_days(days: set[date]) -> None:
        if made is not None:
            made.append(days)
        async with pool.acquire() as conn:
            for d in days:
                await partitions.create_partition(conn, d)

    return ensure_days


async def started(pool: asyncpg.Pool, **kw: object) -> Writer:
    w = Writer(pool, max_events=100_000, flush_events=5000, flush_interval=0.005, **kw)  # type: ignore[arg-type]
    w.start()
    return w


async def test_props_orjson_cannot_encode_rejected_alone(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """Props holding an integer past 64 bits, or nested deeper than orjson encodes, were a
    500 for the whole batch (orjson's TypeError escaped the judgement): now that event alone
    is rejected ``invalid`` and the others are stored."""
    good = {"id": str(uuid.uuid4()), "type": "page_view", "props": {"n": 2**63 - 1}}
    big = {"id": str(uuid.uuid4()), "type": "page_view", "props": {"n": 2**70}}
    deep: object = []
    for _ in range(300):
        deep = [deep]
    nested = {"id": str(uuid.uuid4()), "type": "page_view", "props": {"d": deep}}
    bad_field = {"id": str(uuid.uuid4()), "type": "page_view", "room_id": "x"}
    for evs in ([good, big, nested], [big, nested, bad_field]):
        status, body = await http(
            "POST", server.url + "/api/events", json={"events": evs},
            headers=viewer_headers(world),
        )  # fmt: skip
        assert status == 200, body
        assert isinstance(body, dict)
        assert {(r["index"], r["code"]) for r in body["rejected"]} >= {  # type: ignore[union-attr]
            (evs.index(big), "invalid"),
            (evs.index(nested), "invalid"),
        }
    assert await pool.fetchval("SELECT count(*) FROM analytics_events") == 1
    assert await pool.fetchval("SELECT (props->>'n')::bigint FROM analytics_events") == 2**63 - 1


async def test_number_past_a_double_rejected_alone(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A prop ``1e400`` fails msgspec's typed decode and then orjson's (infinity): it was a 500
    for the whole batch, on the per-event path and on the over-the-limit path alike. Now that
    event alone is rejected ``invalid``."""

    def ev(props: bytes = b"{}") -> bytes:
        return b'{"id":"%s","type":"page_view","props":%s}' % (str(uuid.uuid4()).encode(), props)

    # A NUL-free batch (per-event typed decode), then one over max_batch_events (500).
    for evs in (
        [ev(), ev(b'{"f":1e400}')],
        [ev(), ev(b'{"f":-1e400}'), *(ev() for _ in range(499))],
    ):
        raw = b'{"events":[' + b",".join(evs) + b"]}"
        status, body = await http(
            "POST", server.url + "/api/events", data=raw,
            headers={**viewer_headers(world), "Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200, body
        assert isinstance(body, dict)
        assert body["rejected"][0]["index"] == 1  # type: ignore[index]
        assert body["rejected"][0]["code"] == "invalid"  # type: ignore[index]
        assert body["stored"] == len(evs) - 1 - (len(evs) > 500)


def deep_event(depth: int) -> str:
    """An event whose props nest ``depth`` arrays: within orjson's limit (1,024), past the
    recursion msgspec's decode can take (about 1,000 frames)."""
    nested = "[" * depth + "]" * depth
    return f'{{"id":"{uuid.uuid4()}","type":"page_view","props":{{"d":{nested}}}}}'


async def test_socket_frame_nested_past_msgspec_keeps_the_good_event(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A track frame orjson reads but msgspec's typed decode cannot (RecursionError) closed the
    viewer's socket with 1011 and an ERROR; now the deep event is rejected and the good one
    stored."""
    good = uuid.uuid4()
    frame = (
        f'{{"type":"track","ref":"r","events":[{{"id":"{good}","type":"page_view"}},'
        f"{deep_event(1010)}]}}"
    )
    async with websockets.connect(
        f"{server.ws_url()}?room={world.room_id}&token={world.viewer_token()}"
    ) as ws:
        json.loads(await ws.recv())
        await ws.send(frame)
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if msg.get("type") in ("tracked", "error") and "seq" not in msg:
                break
    assert (msg["type"], msg["stored"]) == ("tracked", 1), msg
    assert [(r["index"], r["code"]) for r in msg["rejected"]] == [(1, "invalid")]
    assert await stored_ids(pool) == [str(good)]


async def test_http_body_nested_past_msgspec_is_a_400(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A body nested deeper than msgspec can decode (RecursionError) was a 500 with an ERROR
    traceback, on POST /api/events as on every JSON route; now a 400 naming the body."""
    plain = '{"events":[' + deep_event(1100) + "]}"
    with_nul = '{"events":[{"page":"a\\u0000b"},' + deep_event(1100) + "]}"  # NUL check first
    for raw in (plain.encode(), with_nul.encode()):
        status, body = await http(
            "POST", server.url + "/api/events", data=raw,
            headers={**viewer_headers(world), "Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 400, body
        assert body["error"]["field"] == "body"  # type: ignore[index]
    assert await stored_ids(pool) == []


def in_room(event_id: uuid.UUID, room: int) -> Row:
    r = row(event_id)
    return (*r[:8], room, *r[9:])


async def test_slow_path_stores_the_first_copy_as_counted(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """Copies of one id inside a slow-path flush: the fast path stores the first and so do
    the answers and the live counters (``on_stored``). The slow way staged every copy and
    stored an arbitrary one (``DISTINCT ON`` ties), so a copy counted in room 1 was stored in
    room 2: the live figures disagreed with the reports."""
    counted: list[Row] = []

    async def on_stored(rows: list[Row]) -> None:
        counted.extend(rows)

    a = await started(writer_pool)
    b = await started(writer_pool, on_stored=on_stored)
    try:
        elsewhere = row()
        assert await a.write([elsewhere]) == 1
        xs = [uuid.uuid4() for _ in range(40)]
        batch = [row(elsewhere[0]), *(in_room(x, 1) for x in xs), *(in_room(x, 2) for x in xs)]
        assert await b.write(batch) == 40
        assert b.slow_flushes == 1
        got = await pool.fetch(
            "SELECT event_id, room_id FROM analytics_events WHERE event_id = ANY($1::uuid[])", xs
        )
        assert {r["event_id"]: r["room_id"] for r in got} == dict.fromkeys(xs, 1)
        assert {r[0]: r[8] for r in counted} == dict.fromkeys(xs, 1)
        assert len(counted) == 40
    finally:
        await a.close()
        await b.close()
