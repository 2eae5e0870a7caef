"""Trying to break the analytics writer (2026-11-30): odd ids, races, partitions, cancellation.

Real PostgreSQL and Valkey; two :class:`Writer` objects on one database stand for two nodes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
import websockets

from livecommerce import keys
from livecommerce.growth.analytics import partitions
from livecommerce.growth.analytics import writer as writer_module
from livecommerce.growth.analytics.events import Row, server_event_id, server_row
from tests.growth.analytics.conftest import (
    counts,
    ensurer,
    row,
    started,
    stored_ids,
    viewer_headers,
)
from tests.realtime.conftest import World
from tests.support import AppServer, http


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
    event alone is rejected ``invalid``, naming its id."""
    bad_id = str(uuid.uuid4())

    def ev(props: bytes = b"{}") -> bytes:
        i = bad_id if b"400" in props else str(uuid.uuid4())
        return b'{"id":"%s","type":"page_view","props":%s}' % (i.encode(), props)

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
        assert body["rejected"][0]["id"] == bad_id  # type: ignore[index]
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


async def test_one_id_in_every_textual_form_stored_and_counted_once(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """Held: one id as lower/upper case, without hyphens, in braces and as a URN (the last two
    only through the field-by-field judgement) in one batch and again in another: stored once,
    answered 1 + 11 duplicates, counted once live."""
    u = uuid.uuid4()
    forms = [str(u), str(u).upper(), u.hex, u.hex.upper(), "{" + str(u) + "}", f"urn:uuid:{u}"]
    evs = [
        {"id": f, "type": "bubble_click", "room_id": world.room_id, "push_seq": 3} for f in forms
    ]
    answers = []
    for batch in (evs, evs[::-1]):
        status, body = await http(
            "POST", server.url + "/api/events", json={"events": batch},
            headers=viewer_headers(world),
        )  # fmt: skip
        assert status == 200, body
        answers.append(body)
    assert [(b["stored"], b["duplicates"]) for b in answers] == [(1, 5), (0, 6)]  # type: ignore[index]
    assert await stored_ids(pool) == [str(u)]
    live = await server.app[keys.ANALYTICS_LIVE].read(world.room_id)
    assert live["events"] == {"bubble_click": 1}


async def test_known_duplicates_only_and_cancelled_callers(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """Held: a flush of only ids this node committed never reaches PostgreSQL; callers
    cancelled while their flush runs (clients gone) still get their rows stored, once, and
    leave no unretrieved future exception behind."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    w = await started(writer_pool)
    try:
        first = [row() for _ in range(50)]
        assert await w.write(first) == 50
        assert await w.write([row(r[0]) for r in first[::-1]]) == 0
        assert (w.slow_flushes, w.duplicates_total) == (0, 50)
        batches = [[row() for _ in range(100)] for _ in range(10)]
        tasks = [asyncio.create_task(w.write(b)) for b in batches]
        await asyncio.sleep(0.002)
        for t in tasks[::2]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(500):  # the cancelled callers' rows are written all the same
            if not w.buffered:
                break
            await asyncio.sleep(0.01)
        ids = [r[0] for b in batches for r in b]
        assert await counts(pool, ids) == dict.fromkeys(ids, 1)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        await w.close()
    assert errors == []


async def test_slow_path_with_missing_partitions_of_two_days(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """Held: a flush meeting an id of another node (slow way) and rows of two days without a
    partition: the partitions are made, the flush retried, each id stored once."""
    made: list[set[date]] = []
    a = await started(writer_pool)
    b = await started(writer_pool, ensure_days=ensurer(pool, made))
    later = datetime.now(UTC) + timedelta(days=25)
    try:
        first = row()
        assert await a.write([first]) == 1
        fut = [row(at=later), row(at=later + timedelta(days=1))]
        assert await b.write([row(first[0]), *fut, row(fut[0][0])]) == 2
        assert made == [{first[2].date(), later.date(), (later + timedelta(days=1)).date()}]
        ids = [first[0], fut[0][0], fut[1][0]]
        assert await counts(pool, ids) == dict.fromkeys(ids, 1)
    finally:
        await a.close()
        await b.close()
        for d in (later, later + timedelta(days=1)):
            await pool.execute(f"DROP TABLE IF EXISTS {partitions.partition_name(d.date())}")


async def test_server_rows_of_two_nodes_mixed_with_client_rows(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """Held: the same room_minute (deterministic id) from two nodes, each flushed with client
    rows some of which the other node also has: each id stored and counted once in all."""
    counted: list[Row] = []

    async def on_stored(rows: list[Row]) -> None:
        counted.extend(rows)

    a = await started(writer_pool, on_stored=on_stored)
    b = await started(writer_pool, on_stored=on_stored)
    try:
        eid = server_event_id("room_minute", 7, 123)
        ra = server_row("room_minute", event_id=eid, room_id=7, props={"viewers": 1})
        rb = server_row("room_minute", event_id=eid, room_id=7, props={"viewers": 2})
        cl = [row() for _ in range(3)]
        got = await asyncio.gather(a.write([ra, *cl[:2]]), b.write([rb, *cl[1:]]))
        assert sum(got) == 4
        assert sorted(r[0] for r in counted) == sorted([eid, *(r[0] for r in cl)])
        assert await counts(pool, [eid]) == {eid: 1}
    finally:
        await a.close()
        await b.close()


async def test_hung_live_counters_do_not_stall_the_next_flush(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """The live counters (``on_stored``: Redis) are best effort, but the flusher awaited them
    before its next flush: with Redis hung every events request took the Redis timeout and
    its retries (2.3 s a request at a 0.5 s timeout, measured over HTTP; ~12 s at the default
    3 s), and the buffer filled. Now they are counted aside: the next flush does not wait, and
    close() still waits for the counting in flight."""
    hung = asyncio.Event()
    counted: list[Row] = []

    async def on_stored(rows: list[Row]) -> None:
        await hung.wait()
        counted.extend(rows)

    w = await started(writer_pool, on_stored=on_stored)
    try:
        first, second = row(), row()
        assert await asyncio.wait_for(w.write([first]), 2) == 1
        assert await asyncio.wait_for(w.write([second]), 2) == 1
        assert await counts(pool, [first[0], second[0]]) == {first[0]: 1, second[0]: 1}
        closing = asyncio.create_task(w.close())
        await asyncio.sleep(0.05)
        assert not closing.done()  # the counting in flight is waited for
        hung.set()
        await asyncio.wait_for(closing, 2)
        assert sorted(r[0] for r in counted) == sorted([first[0], second[0]])
    finally:
        hung.set()
        await w.close()


async def test_live_counting_in_flight_is_bounded(
    writer_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most ``COUNTING_MAX`` flushes count at once (Redis hung): the next flush waits for
    one of them (memory stays bounded) and nothing goes uncounted (the exposures are results)."""
    monkeypatch.setattr(writer_module, "COUNTING_MAX", 1)
    hung = asyncio.Event()
    counted: list[Row] = []

    async def on_stored(rows: list[Row]) -> None:
        await hung.wait()
        counted.extend(rows)

    w = await started(writer_pool, on_stored=on_stored)
    try:
        rows = [row() for _ in range(3)]
        assert await asyncio.wait_for(w.write([rows[0]]), 2) == 1
        # Answered once committed; its flusher then waits for the first counting to end.
        assert await asyncio.wait_for(w.write([rows[1]]), 2) == 1
        third = asyncio.create_task(w.write([rows[2]]))
        await asyncio.sleep(0.1)
        assert not third.done()
        hung.set()
        assert await asyncio.wait_for(third, 2) == 1
    finally:
        hung.set()
        await w.close()
    assert [r[0] for r in counted] == [r[0] for r in rows]


async def test_racing_flushers_random_overlaps_cancels_and_missing_days(
    writer_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    """Held: two nodes of two flushers each, 150 writes of random overlapping ids over four
    days without partitions, 40 callers cancelled: no flush fails (no deadlock), each id is
    stored once and counted once."""
    counted: list[Row] = []

    async def on_stored(rows: list[Row]) -> None:
        counted.extend(rows)

    nodes = [
        await started(writer_pool, flushers=2, on_stored=on_stored, ensure_days=ensurer(pool))
        for _ in range(2)
    ]
    for w in nodes:
        w.flush_events = 300
    rnd = random.Random(11)
    base = datetime.now(UTC)
    try:
        ids = [uuid.uuid4() for _ in range(3000)]
        at = {u: base + timedelta(days=40 + rnd.randint(0, 3)) for u in ids}
        tasks = []
        for _ in range(150):
            chunk = rnd.sample(ids, rnd.randint(1, 80))
            w = rnd.choice(nodes)
            tasks.append(asyncio.create_task(w.write([row(u, at=at[u]) for u in chunk])))
            if rnd.random() < 0.3:
                await asyncio.sleep(0.001)
        for t in rnd.sample(tasks, 40):
            t.cancel()
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(a, (int, asyncio.CancelledError)) for a in answers), answers
        for _ in range(500):
            if not any(w.buffered for w in nodes):
                break
            await asyncio.sleep(0.01)
        got = await pool.fetch("SELECT event_id, count(*) AS n FROM analytics_events GROUP BY 1")
        assert {r["n"] for r in got} == {1}
        assert sorted(r[0] for r in counted) == sorted(r["event_id"] for r in got)
    finally:
        for w in nodes:
            await w.close()
        for d in range(40, 44):
            day = (base + timedelta(days=d)).date()
            await pool.execute(f"DROP TABLE IF EXISTS {partitions.partition_name(day)}")
