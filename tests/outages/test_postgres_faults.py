"""PostgreSQL stopped and restarted under traffic: 503 + Retry-After during the outage, logged
once, and every call succeeding within 5 s of PostgreSQL answering again (no restart of ours)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import websockets

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET, Settings
from livecommerce.db import close_pool, create_pool
from livecommerce.growth.analytics import partitions
from livecommerce.growth.analytics.writer import Writer
from livecommerce.growth.analytics.writer_pool import create_writer_pool
from tests.growth.analytics.test_writer import row
from tests.outages.conftest import Faults
from tests.outages.traffic import (
    Call,
    Result,
    assert_unavailable,
    check_sweep,
    every_route,
    keep_calling,
    request,
)
from tests.realtime.conftest import World
from tests.realtime.rawws import RawWS, upgrade_head
from tests.support import AppServer

RECOVERY_SECONDS = 5.0


def pg_calls(world: World) -> list[Call]:
    """REST calls that each need PostgreSQL."""
    host = world.host_headers()
    return [
        Call("GET", f"/api/goods/{world.goods_ids[0]}"),
        Call("GET", f"/api/rooms/{world.room_id}"),
        Call("GET", f"/api/rooms/{world.room_id}/schedules", host),
        Call("POST", "/api/goods", host, {"title": "T", "price_fen": 100, "stock": 1}),
    ]


def ok(result: Result) -> bool:
    return result.status in (200, 201)


@pytest.mark.timeout(120)
async def test_postgres_stop_and_restart_under_traffic(
    fault_server: AppServer,
    fault_world: World,
    faulty: Faults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: 200s; while stopped: only 503 naming postgres with Retry-After; after: every
    call succeeds within 5 s of PostgreSQL answering; the outage is logged once."""
    caplog.set_level(logging.INFO)
    calls = pg_calls(fault_world)
    for call in calls:
        assert ok(await request(fault_server.url, call))
    results: list[Result] = []
    traffic = asyncio.create_task(keep_calling(fault_server.url, calls, results))
    await asyncio.sleep(0.3)
    stopping = time.monotonic()
    await faulty.stop_postgres()
    stopped = time.monotonic()
    await asyncio.sleep(1.5)
    restarting = time.monotonic()
    await faulty.start_postgres()
    answering = time.monotonic()  # start_postgres returns once PostgreSQL accepts connections
    await asyncio.sleep(RECOVERY_SECONDS + 1.0)
    traffic.cancel()
    with pytest.raises(asyncio.CancelledError):
        await traffic

    before = [r for r in results if r.finished < stopping]
    during = [r for r in results if stopped <= r.started and r.finished < restarting]
    around = [r for r in results if r.finished >= stopping and r.started < answering]
    after = [r for r in results if r.started >= answering + RECOVERY_SECONDS]
    assert before, results
    assert during, results
    assert after, results
    assert all(ok(r) for r in before), [r for r in before if not ok(r)]
    for r in during:
        assert_unavailable(r, "postgres")
    for r in around:
        if not ok(r):
            assert_unavailable(r, "postgres")
    assert all(ok(r) for r in after), [r for r in after if not ok(r)]
    first_ok = min(r.started for r in results if r.started >= answering and ok(r))
    late = [r for r in results if r.started >= first_ok and not ok(r)]
    assert not late, late  # once one call succeeded, none failed again
    recovery = first_ok - answering
    print(f"postgres recovery: first success {recovery:.2f} s after PostgreSQL answered")
    assert recovery < RECOVERY_SECONDS

    warnings = [r.getMessage() for r in caplog.records if r.name == "livecommerce.outage"]
    assert sum("postgres unavailable" in m for m in warnings) == 1, warnings
    assert sum("postgres available again" in m for m in warnings) == 1, warnings
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


async def test_join_during_postgres_outage_closes_with_reconnect_code(
    fault_server: AppServer, fault_world: World, faulty: Faults
) -> None:
    """A join that needs PostgreSQL (room not cached in Redis) while it is down: an
    ``unavailable`` error frame and close 1012; after the restart the same join is welcomed."""
    path = f"/ws?room={fault_world.room_id}&token={fault_world.viewer_token()}"
    await faulty.stop_postgres()
    raw = await RawWS.open(fault_server.url)
    await raw.send(upgrade_head(path))
    status, _ = await raw.response_head()
    assert status == 101
    frame = await raw.recv_json()
    assert frame["type"] == "error"
    assert frame["code"] == "unavailable"
    assert await raw.close_code() == 1012
    raw.close()
    await faulty.start_postgres()
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        raw = await RawWS.open(fault_server.url)
        await raw.send(upgrade_head(path))
        await raw.response_head()
        first = await raw.recv_json()
        raw.close()
        if first["type"] == "welcome":
            break
        assert time.monotonic() < deadline, first
        await asyncio.sleep(0.1)


async def test_no_endpoint_answers_500_or_400_for_the_outage(
    fault_server: AppServer,
    fault_world: World,
    faulty: Faults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every route, with a host and a user token, while PostgreSQL is down: a 5xx is always the
    503 naming postgres (never a 500), no ``connection_lost``, and no traceback is logged."""
    caplog.set_level(logging.INFO)
    user = issue_token(DEV_SECRET, "user", 1, 3600)
    # agents are looked up in PostgreSQL (an agent token without a password version is ended)
    agent = issue_token(DEV_SECRET, "agent", 1, 3600, session=0)
    calls = every_route(fault_server.app, [fault_world.host_token, user, agent])
    await faulty.stop_postgres()
    results = [await request(fault_server.url, call) for call in calls]
    unavailable = check_sweep(results, "postgres")
    # Most of the API needs PostgreSQL: of the calls not refused before the handler (the role
    # of the token, an empty body), nearly all answer 503. (A share of *all* calls fell below
    # a third as role-gated routes were added: the agent workspace's refuse host/user tokens.)
    reached = [r for r in results if r.status not in (400, 401, 403)]
    assert len(reached) >= 50, results
    assert unavailable >= 0.9 * len(reached), [
        (r.call.method, r.call.path, r.status) for r in reached if r.status != 503
    ]
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


@pytest.mark.timeout(120)
async def test_events_during_postgres_outage_answer_503_then_store_once(
    fault_server: AppServer, fault_world: World, faulty: Faults
) -> None:
    """POST /api/events while PostgreSQL is stopped: 503 naming postgres (the writer's own
    connections fail, nothing is acknowledged); the client's retry after the restart is stored
    within 5 s, and a second retry is all duplicates: each event once."""
    headers = {"Authorization": f"Bearer {fault_world.viewer_token()}"}

    def batch(n: int) -> list[dict[str, object]]:
        return [{"id": str(uuid.uuid4()), "type": "page_view"} for _ in range(n)]

    first, during = batch(30), batch(40)
    ok_first = await request(
        fault_server.url, Call("POST", "/api/events", headers, {"events": first})
    )
    assert ok_first.status == 200, ok_first
    await faulty.stop_postgres()
    refused = await request(
        fault_server.url, Call("POST", "/api/events", headers, {"events": during})
    )
    assert_unavailable(refused, "postgres")
    await faulty.start_postgres()
    answering = time.monotonic()
    while True:
        again = await request(
            fault_server.url, Call("POST", "/api/events", headers, {"events": during})
        )
        if again.status == 200:
            break
        assert_unavailable(again, "postgres")
        assert time.monotonic() - answering < RECOVERY_SECONDS, again
        await asyncio.sleep(0.1)
    assert again.body["duplicates"] == 0, again  # nothing of the refused batch was kept
    once_more = await request(
        fault_server.url, Call("POST", "/api/events", headers, {"events": during})
    )
    assert (once_more.status, once_more.body["duplicates"]) == (200, 40), once_more
    ids = [uuid.UUID(str(e["id"])) for e in first + during]
    conn = await asyncpg.connect(faulty.database_url)
    try:
        got = await conn.fetch(
            "SELECT event_id, count(*) AS n FROM analytics_events"
            " WHERE event_id = ANY($1::uuid[]) GROUP BY event_id",
            ids,
        )
    finally:
        await conn.close()
    assert {r["event_id"]: r["n"] for r in got} == dict.fromkeys(ids, 1)


@pytest.mark.timeout(120)
async def test_event_writer_across_a_restart_and_a_close_with_postgres_stopping(
    faulty: Faults, fault_settings: Settings
) -> None:
    """Held (2026-11-30): PostgreSQL restarted between two flushes, the writer's pool hands
    out no stale connection (the next flush succeeds at once); close() while flushes are in
    flight and PostgreSQL is stopping returns promptly with every caller answered (stored, or
    an error: nothing acknowledged unwritten) and no unretrieved future exception."""
    pool = await create_pool(fault_settings.database)
    try:
        async with pool.acquire() as conn:
            await partitions.create_partition(conn, datetime.now(UTC).date())
    finally:
        await pool.close()
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    wp = await create_writer_pool(fault_settings.database, 2)
    w = Writer(wp, max_events=100_000, flush_events=2000, flush_interval=0.005, flushers=2)
    w.start()
    try:
        assert await w.write([row() for _ in range(10)]) == 10
        await faulty.stop_postgres()
        await faulty.start_postgres()
        assert await w.write([row() for _ in range(10)]) == 10
        tasks = [asyncio.create_task(w.write([row() for _ in range(2000)])) for _ in range(6)]
        await asyncio.sleep(0.01)
        stopping = asyncio.create_task(faulty.stop_postgres())
        await asyncio.sleep(0.05)
        started_at = time.monotonic()
        await w.close(grace_seconds=10)
        assert time.monotonic() - started_at < 5
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(a == 2000 or isinstance(a, Exception) for a in answers), answers
        await stopping
    finally:
        await close_pool(wp)
    gc.collect()
    await asyncio.sleep(0)
    assert [e for e in errors if not _asyncpg_reset(e)] == []


def _asyncpg_reset(ctx: dict[str, object]) -> bool:
    """asyncpg's own reports when PostgreSQL dies in the middle of a COPY: the pool resets the
    broken connection still marked in a transaction, and a protocol waiter nobody awaits holds
    the connection error (seen once in CI). The callers got their errors; nothing of ours."""
    message = str(ctx.get("message", ""))
    if message.startswith("Resetting connection with an active transaction"):
        return True
    lost = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError)
    return message == "Future exception was never retrieved" and isinstance(
        ctx.get("exception"), lost
    )


@pytest.mark.timeout(120)
async def test_track_frame_during_postgres_outage_keeps_the_viewer(
    fault_server: AppServer, fault_world: World, faulty: Faults
) -> None:
    """A viewer's track frame while PostgreSQL is stopped: ``error`` ``unavailable`` with the
    frame's ref, and the socket stays open (watching the stream needs no PostgreSQL); the same
    frame sent again after the restart is stored once."""
    events = [{"id": str(uuid.uuid4()), "type": "share"} for _ in range(3)]
    frame = json.dumps({"type": "track", "ref": "t1", "events": events})
    url = f"{fault_server.ws_url()}?room={fault_world.room_id}&token={fault_world.viewer_token()}"
    async with websockets.connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await faulty.stop_postgres()

        async def answer() -> dict[str, object]:
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] in ("tracked", "error"):
                    return msg  # type: ignore[no-any-return]

        await ws.send(frame)
        refused = await answer()
        assert (refused["type"], refused["code"], refused["ref"]) == ("error", "unavailable", "t1")
        await ws.send(json.dumps({"type": "ping", "t": 1}))  # still open and answering
        await faulty.start_postgres()
        deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            await asyncio.sleep(0.2)
            await ws.send(frame)
            got = await answer()
            if got["type"] == "tracked":
                break
            assert got["code"] == "unavailable", got
            assert time.monotonic() < deadline, got
        assert (got["ref"], got["stored"], got["duplicates"]) == ("t1", 3, 0)
        await ws.send(frame)
        again = await answer()
        assert (again["stored"], again["duplicates"]) == (0, 3)
