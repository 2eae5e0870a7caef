"""Redis (Valkey) killed and restarted under traffic: 503 + Retry-After naming redis during the
outage, logged once, and every call succeeding within 5 s of Redis answering again."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
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
from tests.realtime.rawws import RawWS, text, upgrade_head
from tests.support import AppServer

RECOVERY_SECONDS = 5.0


def redis_calls(world: World) -> list[Call]:
    """REST calls that each need Redis (a push publishes to the room's stream)."""
    host = world.host_headers()
    return [
        Call("POST", f"/api/rooms/{world.room_id}/push", host, {"goods_id": g})
        for g in world.goods_ids[:2]
    ]


def ok(result: Result) -> bool:
    return result.status in (200, 201)


@pytest.mark.timeout(120)
async def test_redis_kill_and_restart_under_traffic(
    fault_server: AppServer,
    fault_world: World,
    faulty: Faults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: 200s; while Valkey is down: only 503 naming redis with Retry-After; after: every
    call succeeds within 5 s of Valkey answering; one warning for the outage, no traceback."""
    caplog.set_level(logging.INFO)
    calls = redis_calls(fault_world)
    for call in calls:
        assert ok(await request(fault_server.url, call))
    results: list[Result] = []
    traffic = asyncio.create_task(keep_calling(fault_server.url, calls, results))
    await asyncio.sleep(0.3)
    killing = time.monotonic()
    await faulty.kill_valkey()
    killed = time.monotonic()
    await asyncio.sleep(1.5)
    restarting = time.monotonic()
    await faulty.start_valkey()
    answering = time.monotonic()  # start_valkey returns once Valkey answers PING
    await asyncio.sleep(RECOVERY_SECONDS + 1.0)
    traffic.cancel()
    with pytest.raises(asyncio.CancelledError):
        await traffic

    before = [r for r in results if r.finished < killing]
    during = [r for r in results if killed <= r.started and r.finished < restarting]
    around = [r for r in results if r.finished >= killing and r.started < answering]
    after = [r for r in results if r.started >= answering + RECOVERY_SECONDS]
    assert before, results
    assert during, results
    assert after, results
    assert all(ok(r) for r in before), [r for r in before if not ok(r)]
    for r in during:
        assert_unavailable(r, "redis")
    for r in around:
        if not ok(r):
            assert_unavailable(r, "redis")
    assert all(ok(r) for r in after), [r for r in after if not ok(r)]
    first_ok = min(r.started for r in results if r.started >= answering and ok(r))
    late = [r for r in results if r.started >= first_ok and not ok(r)]
    assert not late, late
    recovery = first_ok - answering
    print(f"redis recovery: first success {recovery:.2f} s after Valkey answered")
    assert recovery < RECOVERY_SECONDS

    warnings = [r.getMessage() for r in caplog.records if r.name == "livecommerce.outage"]
    assert sum("redis unavailable" in m for m in warnings) == 1, warnings
    assert sum("redis available again" in m for m in warnings) == 1, warnings
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


async def test_join_during_redis_outage_closes_with_reconnect_code(
    fault_server: AppServer, fault_world: World, faulty: Faults
) -> None:
    """A join while Valkey is down: an ``unavailable`` error frame and close 1012, never a
    crash; once Valkey is back the same join is welcomed within 5 s."""
    path = f"/ws?room={fault_world.room_id}&token={fault_world.viewer_token()}"
    await faulty.kill_valkey()
    raw = await RawWS.open(fault_server.url)
    await raw.send(upgrade_head(path))
    status, _ = await raw.response_head()
    assert status == 101
    frame = await raw.recv_json()
    assert frame["type"] == "error"
    assert frame["code"] == "unavailable"
    assert await raw.close_code() == 1012
    raw.close()
    await faulty.start_valkey()
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


async def test_no_endpoint_answers_500_during_a_redis_outage(
    fault_server: AppServer,
    fault_world: World,
    faulty: Faults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every route, with a host and a user token, while Valkey is down: a 5xx is always the
    503 naming redis (never a 500), and no traceback is logged."""
    caplog.set_level(logging.INFO)
    user = issue_token(DEV_SECRET, "user", 1, 3600)
    calls = every_route(fault_server.app, [fault_world.host_token, user])
    await faulty.kill_valkey()
    results = [await request(fault_server.url, call) for call in calls]
    assert check_sweep(results, "redis") >= 1, results
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


async def test_comment_during_redis_outage_closes_with_reconnect_code(
    fault_server: AppServer, fault_world: World, faulty: Faults
) -> None:
    """A joined viewer whose comment cannot be published (Valkey down) is closed with 1012 (after
    an ``unavailable`` error frame) — the connection is not left hanging or crashed (1011)."""
    raw = await RawWS.open(fault_server.url)
    await raw.send(
        upgrade_head(f"/ws?room={fault_world.room_id}&token={fault_world.viewer_token()}")
    )
    assert (await raw.response_head())[0] == 101
    assert (await raw.recv_json())["type"] == "welcome"
    await faulty.kill_valkey()
    await raw.send(text({"type": "comment", "text": "still there?"}))
    errors: list[object] = []
    while True:  # until the close frame: an `unavailable` error frame may come first
        opcode, payload = await raw.recv_frame()
        if opcode == 0x8:
            code = int.from_bytes(payload[:2], "big")
            break
        if opcode == 0x1:
            message = orjson.loads(payload)
            if message["type"] == "error":
                errors.append(message["code"])
    # 1012 (reconnect), never 1011 (crash); the node may close on its lost subscription first.
    assert code == 1012
    assert set(errors) <= {"unavailable"}, errors
    raw.close()
