"""Server events and reports over real HTTP, sockets, PostgreSQL and Redis: a pushed bubble's
funnel with last-click attribution, the room report, goods per day, funnels, live, CSV."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import pytest
import websockets

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from tests.growth.analytics.conftest import event, user_headers
from tests.realtime.conftest import World
from tests.support import AppServer, http


async def make_user(pool: asyncpg.Pool) -> int:
    uid: int = await pool.fetchval(
        "INSERT INTO users (openid) VALUES ('o-' || gen_random_uuid()) RETURNING id"
    )
    return uid


async def place_order(pool: asyncpg.Pool, user_id: int, goods_id: int, total: int) -> int:
    """An order row as the order service writes it (the triggers record order_placed)."""
    oid: int = await pool.fetchval(
        "INSERT INTO orders (user_id, goods_id, quantity, unit_price_fen, total_fen, title,"
        " idempotency_key, expires_at) VALUES ($1, $2, 1, $3, $3, 't', gen_random_uuid()::text,"
        " now() + interval '15 minutes') RETURNING id",
        user_id,
        goods_id,
        total,
    )
    return oid


async def push(server: AppServer, world: World, goods_id: int) -> int:
    status, body = await http(
        "POST",
        f"{server.url}/api/rooms/{world.room_id}/push",
        json={"goods_id": goods_id},
        headers=world.host_headers(),
    )
    assert status == 201, body
    return int(body["seq"])  # type: ignore[index]


async def wait_for(pool: asyncpg.Pool, sql: str, *args: Any, want: int = 1) -> None:
    for _ in range(100):
        if await pool.fetchval(sql, *args) >= want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {sql}")


# How frames are written: compactly, as clients do (JSON.stringify, orjson), or with spaces.
COMPACT, SPACED = (",", ":"), (", ", ": ")


async def track(
    ws: Any, events: list[dict[str, Any]], offset_ms: int = 0, separators: Any = COMPACT
) -> dict[str, Any]:
    frame = {"type": "track", "events": events, "offset_ms": offset_ms, "ref": "r1"}
    await ws.send(json.dumps(frame, separators=separators))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg.get("type") in ("tracked", "error") and "seq" not in msg:
            return msg  # type: ignore[no-any-return]


async def test_order_attributed_to_the_right_bubble(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """Two bubbles of one goods: the order goes to the bubble the buyer clicked last; the
    funnel counts impressions, clicks, detail views, orders, paid, GMV from both ways in."""
    g = world.goods_ids[0]
    buyer, other = await make_user(pool), await make_user(pool)
    token = issue_token(DEV_SECRET, "user", buyer, 3600)
    async with websockets.connect(f"{server.ws_url()}?room={world.room_id}&token={token}") as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome"
        assert isinstance(welcome["server_time"], int)
        first = await push(server, world, g)
        second = await push(server, world, g)
        await wait_for(
            pool, "SELECT count(*) FROM analytics_events WHERE type = 'push_published'", want=2
        )
        # Socket path: impressions of both bubbles, a click on the first, then on the second.
        out = await track(ws, [
            event("bubble_impression", room_id=world.room_id, goods_id=g, push_seq=first),
            event("bubble_click", room_id=world.room_id, goods_id=g, push_seq=first),
            event("bubble_impression", room_id=world.room_id, goods_id=g, push_seq=second),
        ])  # fmt: skip
        assert (out["type"], out["stored"], out["ref"]) == ("tracked", 3, "r1"), out
    await asyncio.sleep(0.01)
    # HTTP path: the later click and the detail view.
    status, body = await http("POST", server.url + "/api/events", headers=user_headers(buyer),
        json={"events": [event("bubble_click", room_id=world.room_id, goods_id=g, push_seq=second),
                         event("goods_detail_view", goods_id=g, room_id=world.room_id)]})  # fmt: skip
    assert (status, body["stored"]) == (200, 2), body  # type: ignore[index]
    # Someone who clicked nothing buys too: unattributed.
    await place_order(pool, other, g, 500)
    order = await place_order(pool, buyer, g, 1234)
    await pool.execute("UPDATE orders SET status = 'paid', paid_at = now() WHERE id = $1", order)
    await pool.execute("UPDATE orders SET status = 'paid', paid_at = now() WHERE id = $1", order)

    status, report = await http(
        "GET", f"{server.url}/api/host/rooms/{world.room_id}/analytics/pushes",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200, report
    by_seq = {p["push_seq"]: p for p in report["pushes"]}  # type: ignore[index]
    a, b = by_seq[first], by_seq[second]
    assert (a["impressions"], a["clicks"], a["orders"], a["paid_orders"]) == (1, 1, 0, 0)
    assert (b["impressions"], b["clicks"], b["detail_views"]) == (1, 1, 1)
    assert (b["orders"], b["paid_orders"], b["gmv_fen"]) == (1, 1, 1234)
    assert b["median_order_seconds"] is not None
    assert b["click_rate"] == 1.0
    # Server events, once each (the second paid update changed nothing).
    counts = dict(
        await pool.fetch(
            "SELECT type, count(*) FROM analytics_events WHERE source = 'server'"
            " AND type <> 'room_minute' GROUP BY type"
        )
    )
    assert counts == {"push_published": 2, "order_placed": 2, "order_paid": 1}

    status, room = await http(
        "GET", f"{server.url}/api/host/rooms/{world.room_id}/analytics/room",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200, room
    assert (room["gmv_fen"], room["paid_buyers"], room["paid_orders"]) == (1234, 1, 1)  # type: ignore[index]
    assert room["top_goods"][0]["goods_id"] == g  # type: ignore[index]

    status, goods = await http(
        "GET", f"{server.url}/api/host/analytics/goods", headers=world.host_headers()
    )
    assert status == 200, goods
    day = next(d for d in goods["days"] if d["goods_id"] == g)  # type: ignore[index]
    assert (day["orders"], day["paid_orders"], day["clicks"]) == (2, 1, 1)

    status, funnel = await http(
        "GET",
        f"{server.url}/api/host/analytics/funnel?steps=bubble_click,goods_detail_view,order_placed"
        f"&room_id={world.room_id}&breakdown=room",
        headers=world.host_headers(),
    )
    assert status == 200, funnel
    # order_placed is a server event without room_id: a room's funnel takes the room-less
    # events of its shelf's goods, so the order is reached scoped to the room too.
    assert funnel["rows"][0]["counts"] == [1, 1, 1]  # type: ignore[index]
    status, funnel = await http(
        "GET",
        f"{server.url}/api/host/analytics/funnel?steps=bubble_click,goods_detail_view,order_placed",
        headers=world.host_headers(),
    )
    assert funnel["rows"][0]["counts"] == [1, 1, 1], funnel  # type: ignore[index]

    status, live = await http(
        "GET", f"{server.url}/api/host/rooms/{world.room_id}/analytics/live",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200, live
    assert live["events"]["bubble_impression"] == 2
    assert live["gmv_fen"] == 1234
    assert {p["push_seq"]: p["clicks"] for p in live["pushes"]} == {first: 1, second: 1}  # type: ignore[index]

    status, text = await http(
        "GET", f"{server.url}/api/host/rooms/{world.room_id}/analytics/pushes.csv",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200
    assert isinstance(text, str)
    assert text.startswith("\ufeff")  # UTF-8 with a BOM, as Excel needs it
    lines = text[1:].strip().splitlines()
    assert lines[0].startswith("push_seq,goods_id,pushed_at")
    assert len(lines) == 3


async def test_socket_track_corrects_skew_and_dedups(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A track frame's times are shifted by offset_ms; a resent frame is stored once."""
    now = int(time.time() * 1000)
    async with websockets.connect(
        f"{server.ws_url()}?room={world.room_id}&token={world.viewer_token()}"
    ) as ws:
        json.loads(await ws.recv())
        evs = [event("page_view", ts=now - 600_000)]  # the client is 10 minutes slow
        first = await track(ws, evs, offset_ms=600_000)
        again = await track(ws, evs, offset_ms=600_000)
        bad = await track(ws, [{"id": "x", "type": "page_view"}])
    assert (first["stored"], again["stored"], again["duplicates"]) == (1, 0, 1)
    assert bad["rejected"][0]["code"] == "bad_uuid"
    ms = await pool.fetchval(
        "SELECT (extract(epoch FROM occurred_at) * 1000)::bigint FROM analytics_events"
    )
    assert abs(ms - now) < 2000


@pytest.mark.parametrize("separators", [COMPACT, SPACED], ids=["compact", "spaced"])
async def test_socket_frame_with_bad_events_keeps_the_good_ones(
    server: AppServer, world: World, pool: asyncpg.Pool, separators: Any
) -> None:
    """One track frame mixing good events with a bad UUID, an unknown field, an unknown type,
    an oversized props, an unreadable number and a NUL: each bad one is rejected by index, the
    good ones are stored (the frame takes the per-event path once its one-pass decode fails),
    whichever way the frame is written."""
    good = [event("page_view", page="pages/a"), event("share", room_id=world.room_id)]
    evs = [
        good[0],
        {"id": "x", "type": "page_view"},
        event("page_view", colour="red"),
        event("made_up"),
        event("share", props={"blob": "x" * 2100}),
        good[1],
        event("share", props={"n": 1e300}),  # written as 1e400 below: past a double
    ]
    huge = json.dumps(
        {"type": "track", "events": [event("share"), event("share", props={"n": 1e300})]},
        separators=separators,
    ).replace("1e+300", "1e400")
    async with websockets.connect(
        f"{server.ws_url()}?room={world.room_id}&token={world.viewer_token()}"
    ) as ws:
        json.loads(await ws.recv())
        out = await track(ws, evs[:-1], separators=separators)
        nul = await track(
            ws, [event("page_view", page="a\u0000b"), event("share")], separators=separators
        )
        await ws.send(huge)
        unreadable = json.loads(await asyncio.wait_for(ws.recv(), 5))
    codes = {r["index"]: r["code"] for r in out["rejected"]}
    assert codes == {1: "bad_uuid", 2: "invalid", 3: "unknown_type", 4: "too_large"}, out
    assert (out["accepted"], out["stored"]) == (2, 2), out
    assert [r["code"] for r in nul["rejected"]] == ["invalid"], nul
    assert nul["stored"] == 1, nul
    # Only that event is refused (the frame is read without its events first).
    assert [r["index"] for r in unreadable["rejected"]] == [1], unreadable
    assert unreadable["stored"] == 1, unreadable
    stored = {str(r["event_id"]) for r in await pool.fetch("SELECT event_id FROM analytics_events")}
    assert {e["id"] for e in good} <= stored
    assert len(stored) == 4


@pytest.mark.parametrize("separators", [COMPACT, SPACED], ids=["compact", "spaced"])
async def test_socket_track_errors_echo_the_ref(
    server: AppServer, world: World, separators: Any
) -> None:
    """A malformed track frame's error names its ref, so the client knows which frame failed,
    whichever way the frame is written; a frame that is not JSON is ``bad_json``."""
    async with websockets.connect(
        f"{server.ws_url()}?room={world.room_id}&token={world.viewer_token()}"
    ) as ws:
        json.loads(await ws.recv())
        answers = []
        for frame in (
            {"type": "track", "ref": "t1", "events": "nope"},
            {"type": "track", "ref": "t2", "events": [], "offset_ms": "soon"},
            {"type": "track", "ref": 5, "events": []},
            {"type": "track", "ref": "t4"},
            {"type": "track", "ref": "t5", "events": {"0": {}}},
            {"type": "track", "ref": "t6", "events": [], "offset_ms": 10**30},
        ):
            await ws.send(json.dumps(frame, separators=separators))
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        for text in ('{"type":"track","ref":"\\ud800","events":[]}', '{"type":"track",'):
            await ws.send(text)  # a lone surrogate; cut short
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    assert [(a["type"], a["code"], a.get("ref")) for a in answers] == [
        ("error", "invalid", "t1"),
        ("error", "invalid", "t2"),
        ("error", "invalid", None),
        ("error", "invalid", "t4"),
        ("error", "invalid", "t5"),
        ("error", "invalid", "t6"),
        ("error", "bad_json", None),
        ("error", "bad_json", None),
    ], answers


async def test_events_are_a_viewers_on_either_way_in(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """Only users and anonymous viewers record events: ``POST /api/events`` answers a host's or
    an agent's token 403 ``wrong_role``, and a ``track`` frame on a host's socket (the console
    joins the room with one) gets ``error`` ``wrong_role`` with its ref — the socket stays open.
    Nothing is stored."""
    agent = issue_token(DEV_SECRET, "agent", 1, 3600, session=0)  # a versioned agent session
    for token in (world.host_token, agent):
        status, body = await http(
            "POST", f"{server.url}/api/events", json={"events": [event("page_view")]},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert (status, body["error"]["code"]) == (403, "wrong_role"), body  # type: ignore[index]
    async with websockets.connect(
        f"{server.ws_url()}?room={world.room_id}&token={world.host_token}"
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        for separators in (COMPACT, SPACED):  # the one-pass path and the general one
            out = await track(ws, [event("page_view")], separators=separators)
            assert (out["type"], out["code"], out["ref"]) == ("error", "wrong_role", "r1"), out
        await ws.send(json.dumps({"type": "ping", "t": 1}))
        while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "pong":
            pass
    assert await pool.fetchval("SELECT count(*) FROM analytics_events") == 0


async def test_reports_are_the_hosts_only(server: AppServer, world: World) -> None:
    """Another host's room answers 404 (report) and 400 (funnel scope)."""
    other = {"Authorization": f"Bearer {world.other_host_token}"}
    status, _ = await http(
        "GET", f"{server.url}/api/host/rooms/{world.room_id}/analytics/pushes", headers=other
    )
    assert status == 404
    status, body = await http(
        "GET", f"{server.url}/api/host/analytics/funnel?steps=page_view,share"
        f"&room_id={world.room_id}", headers=other,
    )  # fmt: skip
    assert status == 400
    assert body["error"]["field"] == "room_id"


async def test_live_figures_list_only_pushes_the_server_published(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A viewer's events may name any push seq; the live figures (and so the console's push
    timeline) list only the pushes the server published, never a phantom one."""
    g = world.goods_ids[0]
    real = await push(server, world, g)
    viewer = {"Authorization": f"Bearer {world.viewer_token()}"}
    events = [
        event("bubble_impression", room_id=world.room_id, goods_id=g, push_seq=real),
        event("bubble_click", room_id=world.room_id, goods_id=g, push_seq=real + 1000),
        event("bubble_impression", room_id=world.room_id, goods_id=g, push_seq=987_654),
    ]
    status, body = await http("POST", f"{server.url}/api/events", json={"events": events},
                              headers=viewer)  # fmt: skip
    assert status == 200, body
    for _ in range(100):
        status, live = await http(
            "GET", f"{server.url}/api/host/rooms/{world.room_id}/analytics/live",
            headers=world.host_headers(),
        )  # fmt: skip
        assert status == 200, live
        if live["events"].get("bubble_impression") == 2:  # type: ignore[index]
            break
        await asyncio.sleep(0.05)
    assert live["events"]["bubble_impression"] == 2  # type: ignore[index]
    pushes = live["pushes"]  # type: ignore[index]
    assert [p["push_seq"] for p in pushes] == [real], pushes
    assert pushes[0]["impressions"] == 1
