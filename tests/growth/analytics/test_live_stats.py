"""The console's live ``stats`` frame over a real socket, PostgreSQL and Redis: only the room
owner's host socket gets it, every second, with per-push reach, clicks, orders, paid and GMV, and
the room's curve and likes/comments per minute."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import websockets

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.growth.analytics.live import LiveCounters
from livecommerce.growth.analytics.live_stats import StatsPusher
from tests.growth.analytics.conftest import event
from tests.growth.analytics.test_reports import make_user, place_order, push, track
from tests.realtime.conftest import World
from tests.support import AppServer, http


async def socket_token(server: AppServer, world: World, token: str | None = None) -> Any:
    return await http(
        "POST",
        f"{server.url}/api/host/rooms/{world.room_id}/socket-token",
        headers={"Authorization": f"Bearer {token or world.host_token}"},
    )


async def stats_until(
    ws: Any, ok: Callable[[dict[str, Any]], bool], within: float = 15.0
) -> dict[str, Any]:
    """The first ``stats`` frame on ``ws`` for which ``ok`` holds (other frames skipped)."""
    deadline = time.monotonic() + within
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        try:
            msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        except TimeoutError:
            break
        if msg.get("type") == "stats":
            last = msg
            if ok(msg):
                return msg  # type: ignore[no-any-return]
    raise AssertionError(f"no matching stats frame; last: {last}")


async def test_host_socket_gets_live_stats_and_viewers_do_not(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    status, tok = await socket_token(server, world)
    assert status == 201, tok
    assert tok["kind"] == "host"  # type: ignore[index]
    g = world.goods_ids[0]
    buyer = await make_user(pool)
    buyer_token = issue_token(DEV_SECRET, "user", buyer, 3600)
    base = server.ws_url()
    async with (
        websockets.connect(f"{base}?room={world.room_id}&token={tok['token']}") as host,  # type: ignore[index]
        websockets.connect(f"{base}?room={world.room_id}&token={world.viewer_token()}") as viewer,
        websockets.connect(f"{base}?room={world.room_id}&token={buyer_token}") as buyer_ws,
    ):
        for ws in (host, viewer, buyer_ws):
            assert json.loads(await ws.recv())["type"] == "welcome"
        # The three sockets are counted (the node's ticker), then the push records its reach.
        first = await stats_until(host, lambda s: s["viewers"] == 3)
        assert (first["room_id"], first["pushes"]) == (world.room_id, [])
        seq = await push(server, world, g)
        out = await track(buyer_ws, [
            event("bubble_impression", room_id=world.room_id, goods_id=g, push_seq=seq),
            event("bubble_click", room_id=world.room_id, goods_id=g, push_seq=seq),
        ])  # fmt: skip
        assert out["stored"] == 2, out
        await viewer.send(json.dumps({"type": "like", "count": 3}))
        await buyer_ws.send(json.dumps({"type": "comment", "text": "nice"}))

        def clicked(s: dict[str, Any]) -> bool:
            return any(p["push_seq"] == seq and p["clicks"] == 1 for p in s["pushes"])

        s = await stats_until(host, clicked)
        p = next(p for p in s["pushes"] if p["push_seq"] == seq)
        assert (p["goods_id"], p["viewers"], p["impressions"]) == (g, 3, 1), p
        assert (p["orders"], p["paid_orders"], p["gmv_fen"]) == (0, 0, 0), p
        assert p["pushed_at"] is not None
        assert p["schedule_id"] is None

        order = await place_order(pool, buyer, g, 1234)
        await pool.execute(
            "UPDATE orders SET status = 'paid', paid_at = now() WHERE id = $1", order
        )

        def paid(s: dict[str, Any]) -> bool:
            return any(p["push_seq"] == seq and p["paid_orders"] == 1 for p in s["pushes"])

        s = await stats_until(host, paid)
        p = next(p for p in s["pushes"] if p["push_seq"] == seq)
        assert (p["orders"], p["paid_orders"], p["gmv_fen"]) == (1, 1, 1234), p
        assert (s["paid_orders"], s["paid_buyers"], s["gmv_fen"]) == (1, 1, 1234)
        assert s["gpm_fen"] == round(1234 * 1000 / s["peak_viewers"], 1)
        s = await stats_until(host, lambda s: s["likes"] >= 3 and s["comments"] >= 1)
        assert (s["likes_per_min"], s["comments_per_min"]) == (3, 1), s
        assert s["curve"][-1]["viewers"] == 3

        # Viewers never get a stats frame (all their frames so far, read without waiting long).
        seen = []
        for ws in (viewer, buyer_ws):
            while True:
                try:
                    seen.append(json.loads(await asyncio.wait_for(ws.recv(), 0.3))["type"])
                except TimeoutError:
                    break
        assert "comment" in seen
        assert "stats" not in seen, seen


async def test_socket_token_is_the_room_owners_only(server: AppServer, world: World) -> None:
    status, body = await socket_token(server, world, world.other_host_token)
    assert status == 404, body
    status, body = await http(
        "POST", f"{server.url}/api/host/rooms/{world.room_id}/socket-token",
        headers={"Authorization": f"Bearer {world.viewer_token()}"},
    )  # fmt: skip
    assert status == 403, body
    # Another host's own host token joins as a plain viewer: no stats frame.
    async with websockets.connect(
        f"{server.ws_url()}?room={world.room_id}&token={world.other_host_token}"
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        types = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            try:
                types.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5))["type"])
            except TimeoutError:
                continue
        assert "stats" not in types, types


class Console:
    """Stands for a host socket: what the pusher writes to it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(payload)


async def test_one_computation_per_room_per_tick_whatever_the_sockets(
    world: World, pool: asyncpg.Pool, redis: Any
) -> None:
    """Three consoles on one room and one on another: two computations a tick, each room's
    consoles get the same bytes; a room whose consoles left is forgotten."""
    other = await pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state, started_at) VALUES ($1, 'b', 'live',"
        " now()) RETURNING id",
        world.host_id,
    )
    a, b, c, d = Console(), Console(), Console(), Console()
    hosts: dict[int, set[Any]] = {world.room_id: {a, b, c}, other: {d}}

    calls: list[int] = []

    class Counting(StatsPusher):
        async def figures(self, room_id: int) -> dict[str, Any]:
            calls.append(room_id)
            return await super().figures(room_id)

    pusher = Counting(hosts, LiveCounters(redis), pool, window=timedelta(hours=24), interval=1.0)
    await pusher.tick()
    assert sorted(calls) == sorted([world.room_id, other])
    assert len(a.sent) == len(b.sent) == len(c.sent) == len(d.sent) == 1
    assert a.sent == b.sent == c.sent
    assert json.loads(a.sent[0])["room_id"] == world.room_id
    assert json.loads(d.sent[0])["room_id"] == other
    hosts[other] = set()
    await pusher.tick()
    assert calls.count(other) == 1
    assert other not in pusher.rooms


async def test_offer_pushes_get_their_goods_and_time_in_the_stats(
    server: AppServer, world: World
) -> None:
    """A flash sale or group offer pushed as the bubble is a push like any other in the host's
    stats frame: its goods and time (they were blank: only ``goods_push`` was recorded)."""
    status, tok = await socket_token(server, world)
    assert status == 201, tok
    g = world.goods_ids[0]
    now = datetime.now(UTC)
    _, sale = await http("POST", f"{server.url}/api/host/flash-sales", headers=world.host_headers(),
                         json={"goods_id": g, "sale_price_fen": 100, "stock": 5,
                               "starts_at": now.isoformat(),
                               "ends_at": (now + timedelta(minutes=30)).isoformat()})  # fmt: skip
    _, offer = await http("POST", f"{server.url}/api/host/group-offers", headers=world.host_headers(),
                          json={"goods_id": g, "group_price_fen": 200, "size": 2,
                                "fill_seconds": 600})  # fmt: skip
    seqs = []
    for kind, made in (("flash-sales", sale), ("group-offers", offer)):
        status, out = await http(
            "POST", f"{server.url}/api/host/{kind}/{made['id']}/push",  # type: ignore[index]
            headers=world.host_headers(), json={"room_id": world.room_id},
        )  # fmt: skip
        assert status == 201, out
        seqs.append(out["seq"])  # type: ignore[index]
    async with websockets.connect(
        f"{server.ws_url()}?room={world.room_id}&token={tok['token']}"  # type: ignore[index]
    ) as host:
        assert json.loads(await host.recv())["type"] == "welcome"

        def both(s: dict[str, Any]) -> bool:
            return {p["push_seq"] for p in s["pushes"]} >= set(seqs)

        s = await stats_until(host, both)
    for p in s["pushes"]:
        if p["push_seq"] in seqs:
            assert p["goods_id"] == g, p
            assert p["pushed_at"] is not None, p
