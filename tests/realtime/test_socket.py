"""The viewer WebSocket on one node: welcome, fan-out order, resume, resync, and every bad input."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
import websockets

from livecommerce import keys
from livecommerce.auth.session import COOKIE
from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET, Settings
from livecommerce.console import hosts
from tests.realtime.conftest import World, make_world
from tests.realtime.viewer import TestViewer, assert_contiguous, close_code, wait_until
from tests.support import AppServer, http


async def push(server: AppServer, world: World, goods_index: int = 0) -> int:
    status, body = await http(
        "POST",
        f"{server.url}/api/rooms/{world.room_id}/push",
        json={"goods_id": world.goods_ids[goods_index % 3]},
        headers=world.host_headers(),
    )
    assert status == 201, body
    return int(body["seq"])  # type: ignore[index]


async def test_welcome_then_pushes_in_order_to_every_viewer(
    server: AppServer, world: World
) -> None:
    """50 viewers get a welcome with room state, then every push exactly once, in seq order."""
    viewers = [TestViewer(server.ws_url(), world.room_id, world.viewer_token()) for _ in range(50)]
    welcomes = await asyncio.gather(*(v.connect() for v in viewers))
    assert all(w["type"] == "welcome" and w["room"]["state"] == "live" for w in welcomes)
    seqs = [await push(server, world, i) for i in range(10)]
    await wait_until(lambda: all(len(v.of_type("goods_push")) == 10 for v in viewers))
    for v in viewers:
        pushes = v.of_type("goods_push")
        assert [f["seq"] for f in pushes] == seqs
        assert pushes[0]["goods"]["price_fen"] == 1000
        assert len(set(v.seqs())) == len(v.seqs()), "duplicate frame"
        assert v.seqs() == sorted(v.seqs())
    for v in viewers:
        await v.close()


async def test_welcome_carries_current_bubble(server: AppServer, world: World) -> None:
    """A viewer joining after a push sees the shown bubble in welcome; after withdraw, none."""
    await push(server, world, 1)
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    welcome = await v.connect()
    assert welcome["bubble"]["goods"]["id"] == world.goods_ids[1]
    await v.close()
    await http(
        "POST", f"{server.url}/api/rooms/{world.room_id}/withdraw", headers=world.host_headers()
    )
    v2 = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    assert (await v2.connect())["bubble"] is None
    await v2.close()


async def test_dropped_viewer_resumes_with_nothing_missed(server: AppServer, world: World) -> None:
    """A viewer that drops mid-stream and reconnects with last_seq gets every missed frame once,
    in order, then live frames with no gap or duplicate at the seam."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    welcome = await v.connect()
    start = welcome["seq"]
    await push(server, world)
    await wait_until(lambda: len(v.frames) == 1)
    await v.drop()
    for i in range(5):
        await push(server, world, i)
    again = await v.connect(resume=True)
    assert again["type"] == "welcome"
    assert again["resumed"] is True
    assert again["missed"] == 5
    await asyncio.gather(*(push(server, world, i) for i in range(5)))
    await wait_until(lambda: len(v.of_type("goods_push")) == 11)
    assert_contiguous(v, start + 1, start + 11)
    await v.close()


async def test_resume_beyond_history_gets_resync(
    make_server: Callable[..., Any], settings: Settings, pool: Any
) -> None:
    """When what a viewer missed is no longer retained, it gets a resync with the full state."""
    import dataclasses

    small = dataclasses.replace(
        settings, rooms=dataclasses.replace(settings.rooms, history_max_messages=3)
    )
    srv: AppServer = await make_server(small)
    world = await make_world(pool)
    v = TestViewer(srv.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    await v.drop()
    for i in range(6):
        await push(srv, world, i)
    again = await v.connect(resume=True)
    assert again["type"] == "resync"
    assert again["resumed"] is False
    assert again["bubble"]["goods"]["id"] == world.goods_ids[5 % 3]
    await push(srv, world)
    await wait_until(lambda: len(v.frames) == 1)
    assert v.frames[0]["seq"] == again["seq"] + 1
    await v.close()


async def test_epoch_change_forces_resync(server: AppServer, world: World, redis: Any) -> None:
    """If Redis lost the room (new epoch), a resuming viewer gets resync, not stale seqs."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    await push(server, world)
    await wait_until(lambda: len(v.frames) == 1)
    await v.drop()
    await redis.flushdb()
    again = await v.connect(resume=True)
    assert again["type"] == "resync"
    assert again["epoch"] != v.welcomes[0]["epoch"]
    await v.close()


async def test_resume_message_as_first_frame(server: AppServer, world: World) -> None:
    """`resume` sent as the first message replays what was missed before the welcome."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    first = await v.connect()
    await v.close()
    for i in range(3):
        await push(server, world, i)
    v2 = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v2.connect()
    await v2.send({"type": "resume", "last_seq": first["seq"], "epoch": first["epoch"]})
    await wait_until(lambda: len(v2.frames) == 3)
    await push(server, world)
    await wait_until(lambda: len(v2.frames) == 4)
    assert_contiguous(v2, first["seq"] + 1, first["seq"] + 4)
    await v2.send({"type": "resume", "last_seq": 0})
    await wait_until(lambda: any(o.get("code") == "resume_too_late" for o in v2.others))
    await v2.close()


async def test_resume_message_after_a_live_frame_is_too_late_for_the_first_viewer(
    server: AppServer, world: World
) -> None:
    """The first viewer of a room on a node is welcomed before the node has delivered anything
    of the room, and its live frames then go through the join's catch-up path: once one has
    reached it, a `resume` is too late there too (it replayed that frame a second time)."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    first = await v.connect()
    await push(server, world)
    await wait_until(lambda: len(v.frames) == 1)
    await v.send({"type": "resume", "last_seq": first["seq"], "epoch": first["epoch"]})
    last = await push(server, world)
    await wait_until(lambda: bool(v.frames) and v.frames[-1]["seq"] >= last)
    assert_contiguous(v, first["seq"] + 1, last)
    assert [o.get("code") for o in v.others] == ["resume_too_late"]
    await v.close()


@pytest.mark.parametrize("bad_epoch", [None, "not-the-epoch"])
async def test_resume_message_without_epoch_is_a_resync(
    server: AppServer, world: World, bad_epoch: str | None
) -> None:
    """A `resume` message without (or with another) epoch is not trusted: resync, no replay."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    first = await v.connect()
    await v.close()
    await push(server, world)
    v2 = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v2.connect()
    msg: dict[str, Any] = {"type": "resume", "last_seq": first["seq"]}
    if bad_epoch is not None:
        msg["epoch"] = bad_epoch
    await v2.send(msg)
    await wait_until(lambda: any(o.get("type") == "resync" for o in v2.others))
    resync = next(o for o in v2.others if o.get("type") == "resync")
    assert resync["seq"] == first["seq"] + 1
    assert resync["resumed"] is False
    await push(server, world)
    await wait_until(lambda: len(v2.frames) == 1)
    assert v2.frames[0]["seq"] == first["seq"] + 2  # nothing replayed
    await v2.close()


async def test_url_resume_without_epoch_is_a_resync(server: AppServer, world: World) -> None:
    """`?last_seq=` without `&epoch=` is not trusted as a match: resync, not resumed."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    first = await v.connect()
    await v.close()
    await push(server, world)
    url = f"{server.ws_url()}?room={world.room_id}&token={v.token}&last_seq={first['seq']}"
    async with websockets.connect(url) as ws:
        welcome = orjson.loads(await ws.recv())
    assert welcome["type"] == "resync"
    assert welcome["resumed"] is False
    assert welcome["seq"] == first["seq"] + 1
    assert welcome["epoch"] == first["epoch"]


async def expect_close(url: str, code: int, error: str | None = None) -> None:
    async with websockets.connect(url) as ws:
        if error is not None:
            msg = orjson.loads(await ws.recv())
            assert msg == {"type": "error", "code": error, "message": msg["message"]}
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == code


async def test_handshake_errors_have_close_codes(
    server: AppServer, world: World, pool: Any
) -> None:
    """Missing/invalid params, bad or expired tokens, unknown and ended rooms: documented codes."""
    base = server.ws_url()
    tok = world.viewer_token()
    await expect_close(f"{base}?token={tok}", 4400, "bad_request")
    await expect_close(f"{base}?room=abc&token={tok}", 4400, "bad_request")
    await expect_close(f"{base}?room={world.room_id}&token={tok}&last_seq=-1", 4400, "bad_request")
    await expect_close(f"{base}?room={world.room_id}", 4401, "missing_token")
    await expect_close(f"{base}?room={world.room_id}&token=garbage", 4401, "bad_token")
    expired = issue_token(DEV_SECRET, "viewer", "anon-x", 5, now=1000)
    await expect_close(f"{base}?room={world.room_id}&token={expired}", 4401, "token_expired")
    await expect_close(f"{base}?room=987654&token={tok}", 4404, "room_not_found")
    ended = await make_world(pool, state="ended")
    await expect_close(f"{base}?room={ended.room_id}&token={tok}", 4410, "room_ended")
    status, body = await http("GET", server.url + "/ws")
    assert status == 400
    assert body["error"]["code"] == "websocket_expected"  # type: ignore[index]


async def test_only_viewer_identities_join(server: AppServer, world: World) -> None:
    """The room socket is for viewers: a user, an anonymous viewer or a host (the console)
    joins; a customer-service agent's token — in the URL or as a bearer header — is refused
    like a bad token: an ``error`` frame ``wrong_role``, then 4401."""
    base = server.ws_url()
    agent = issue_token(DEV_SECRET, "agent", 1, 3600, session_id="s-agent")
    await expect_close(f"{base}?room={world.room_id}&token={agent}", 4401, "wrong_role")
    async with websockets.connect(
        f"{base}?room={world.room_id}", additional_headers={"Authorization": f"Bearer {agent}"}
    ) as ws:
        assert orjson.loads(await ws.recv())["code"] == "wrong_role"
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 4401
    user = issue_token(DEV_SECRET, "user", 10**9, 3600)
    for token in (world.viewer_token(), user, world.host_token):
        async with websockets.connect(f"{base}?room={world.room_id}&token={token}") as ws:
            assert orjson.loads(await ws.recv())["type"] == "welcome"


async def test_query_is_checked_by_its_model(server: AppServer, world: World) -> None:
    """The /ws query (WsQuery) refuses what is not ASCII digits, even a trailing newline or
    "1e3", and ignores parameters it does not know (cache busters)."""
    base = server.ws_url()
    tok = world.viewer_token()
    for room in (f"{world.room_id}%0A", "1e3", f"{world.room_id}.0", "+1", "1" * 19):
        await expect_close(f"{base}?room={room}&token={tok}", 4400, "bad_request")
    await expect_close(f"{base}?room={world.room_id}&token={tok}&epoch={'e' * 33}", 4400,
                       "bad_request")  # fmt: skip
    async with websockets.connect(f"{base}?_t=1&room={world.room_id}&x=&token={tok}") as ws:
        assert orjson.loads(await ws.recv())["type"] == "welcome"


async def test_bad_messages_get_error_frames(server: AppServer, world: World) -> None:
    """Malformed JSON, non-objects, unknown types and bad fields get error frames; the socket lives."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    assert v.ws is not None
    for raw in ("{oops", "[1]", '{"type": 5}', '{"type": "buy"}', '{"type": "like", "count": 0}',
                '{"type": "like", "count": true}', '{"type": "comment"}', '{"type": "comment", "text": "\\u0000\\u200b"}',
                '{"type": "resume", "last_seq": "x"}'):  # fmt: skip
        await v.ws.send(raw)
    await wait_until(lambda: len(v.others) == 9)
    codes = [o["code"] for o in v.others]
    assert codes == [
        "bad_json",
        "bad_message",
        "bad_message",
        "unknown_type",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
    ]
    await v.send({"type": "ping", "t": 42})
    await wait_until(lambda: v.others[-1].get("type") == "pong")
    assert v.others[-1] == {"type": "pong", "t": 42}
    await v.close()


async def test_oversized_and_binary_frames_close(server: AppServer, world: World) -> None:
    """A frame over max_frame_bytes closes with 1009; a binary frame closes with 1003."""
    url = f"{server.ws_url()}?room={world.room_id}&token={world.viewer_token()}"
    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.send('{"type":"comment","text":"' + "x" * 5000 + '"}')
        assert await close_code(ws) == 1009
    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.send(b"\x00\x01")
        assert await close_code(ws) == 1003


async def test_comments_likes_and_rate_limits(server: AppServer, world: World) -> None:
    """Comments are cleaned and published; likes are aggregated per tick; floods are refused."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    await v.send({"type": "comment", "text": "  hello\u202e  world\x07 "})
    await wait_until(lambda: len(v.of_type("comment")) == 1)
    assert v.of_type("comment")[0]["text"] == "hello world"
    await v.send({"type": "comment", "text": "too soon"})
    for _ in range(5):
        await v.send({"type": "like", "count": 10})
    await wait_until(lambda: sum(f["delta"] for f in v.of_type("likes")) == 50)
    assert v.of_type("likes")[-1]["total"] == 50
    assert any(o.get("code") == "rate_limited" for o in v.others)
    for _ in range(40):
        await v.send({"type": "ping"})
    await wait_until(lambda: sum(o.get("code") == "rate_limited" for o in v.others) > 1)
    await v.close()


async def test_comment_errors_echo_the_ref(server: AppServer, world: World) -> None:
    """Every error frame about a comment carries its `ref` (docs/protocol.md), so a client can
    tell which of its comments was refused: too long (201 characters; 200 are published), empty
    once cleaned, not a string, sent too soon."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    await v.send({"type": "comment", "text": "x" * 201, "ref": "long"})
    await v.send({"type": "comment", "text": "\u200b \u202e", "ref": "blank"})
    await v.send({"type": "comment", "text": 7, "ref": "number"})
    await v.send({"type": "comment", "text": "x" * 200, "ref": "ok"})
    await v.send({"type": "comment", "text": "again", "ref": "soon"})
    await wait_until(lambda: len(v.others) == 4 and len(v.of_type("comment")) == 1)
    assert [(o["code"], o.get("ref")) for o in v.others] == [
        ("invalid", "long"),
        ("invalid", "blank"),
        ("invalid", "number"),
        ("rate_limited", "soon"),
    ]
    assert v.of_type("comment")[0]["text"] == "x" * 200
    await v.close()


async def test_connection_limit_per_user(
    make_server: Callable[..., Any], settings: Settings, world: World
) -> None:
    """Past rooms.max_connections_per_user, a new socket is closed with 4429."""
    import dataclasses

    srv: AppServer = await make_server(
        dataclasses.replace(
            settings, rooms=dataclasses.replace(settings.rooms, max_connections_per_user=2)
        )
    )
    tok = world.viewer_token()
    held = [TestViewer(srv.ws_url(), world.room_id, tok) for _ in range(2)]
    for v in held:
        await v.connect()
    await expect_close(
        f"{srv.ws_url()}?room={world.room_id}&token={tok}", 4429, "too_many_connections"
    )
    await held[0].close()
    again = TestViewer(srv.ws_url(), world.room_id, tok)
    await again.connect()
    for v in (held[1], again):
        await v.close()


async def test_viewer_count_is_published(server: AppServer, world: World) -> None:
    """Viewer counts reach viewers, throttled per tick, and fall when viewers leave."""
    viewers = [TestViewer(server.ws_url(), world.room_id, world.viewer_token()) for _ in range(5)]
    for v in viewers:
        await v.connect()
    await wait_until(lambda: any(f["count"] == 5 for f in viewers[0].of_type("viewer_count")))
    for v in viewers[1:]:
        await v.close()
    await wait_until(lambda: viewers[0].of_type("viewer_count")[-1]["count"] == 1)
    await viewers[0].close()


async def test_slow_viewer_is_evicted_without_delaying_others(
    make_server: Callable[..., Any], settings: Settings, world: World
) -> None:
    """A viewer that stops reading is evicted (4408) once its buffer passes the limit; others get all."""
    import dataclasses

    srv: AppServer = await make_server(
        dataclasses.replace(
            settings, rooms=dataclasses.replace(settings.rooms, send_buffer_max_bytes=32_768)
        )
    )
    fast = TestViewer(srv.ws_url(), world.room_id, world.viewer_token())
    await fast.connect()
    # A raw client with a tiny receive window that never reads after the handshake.
    host, port = srv.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    request = (
        f"GET /ws?room={world.room_id}&token={world.viewer_token()} HTTP/1.1\r\nHost: x\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    await asyncio.get_running_loop().sock_sendall(sock, request)
    hub = srv.app[keys.HUB]
    await wait_until(lambda: hub.local_viewers(world.room_id) == 2)
    broker = srv.app[keys.BROKER]
    pad = "x" * 4000
    for _ in range(3000):
        await broker.publish(world.room_id, {"type": "filler", "pad": pad})
        if srv.app[keys.METRICS].evictions._value.get() >= 1:
            break
    assert srv.app[keys.METRICS].evictions._value.get() == 1
    await wait_until(lambda: hub.local_viewers(world.room_id) == 1)
    last = await broker.current_seq(world.room_id)
    await wait_until(lambda: fast.last_seq == last, within=30)
    assert len(set(fast.seqs())) == len(fast.seqs())
    sock.close()
    await fast.close()


async def test_dead_node_leaves_no_ghost_viewers(server: AppServer, world: World) -> None:
    """A node that reported viewers and then died (stopped reporting) drops out of the count."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    await wait_until(lambda: any(f["count"] == 1 for f in v.of_type("viewer_count")))
    await server.app[keys.BROKER].tick(world.room_id, "node-that-dies", 50, 0)
    await wait_until(lambda: v.of_type("viewer_count")[-1]["count"] == 51)
    await wait_until(lambda: v.of_type("viewer_count")[-1]["count"] == 1, within=20)
    await v.close()


async def test_ending_the_room_closes_sockets_with_4410(server: AppServer, world: World) -> None:
    """Viewers get the room_state 'ended' frame, then a 4410 close (no reconnect loop)."""
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    status, _ = await http(
        "POST", f"{server.url}/api/rooms/{world.room_id}/end", headers=world.host_headers()
    )
    assert status == 200
    await asyncio.wait_for(v.closed.wait(), 10)
    assert v.of_type("room_state")[-1]["state"] == "ended"
    assert v.ws is not None
    assert v.ws.close_code == 4410


async def test_publish_many_survives_a_script_flush(server: AppServer, world: World) -> None:
    """A burst published after Redis lost its scripts (restart, SCRIPT FLUSH) still goes out
    once each, in order, to a connected viewer; a replayed idempotency key publishes nothing."""
    from livecommerce.realtime.broker import PublishItem

    broker = server.app[keys.BROKER]
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    items = [
        PublishItem(world.room_id, {"type": "comment", "text": f"c{i}"}, idempotency_key=f"k{i}")
        for i in range(5)
    ]
    calls = broker.prepare(items)
    await server.app[keys.REDIS].script_flush()
    first = await broker.publish_prepared(calls)
    assert [p.fresh for p in first] == [True] * 5
    again = await broker.publish_many(items)
    assert [p.seq for p in again] == [p.seq for p in first]
    assert not any(p.fresh for p in again)
    await wait_until(lambda: len(v.of_type("comment")) == 5)
    assert [f["text"] for f in v.of_type("comment")] == [f"c{i}" for i in range(5)]
    await v.close()


async def test_a_console_session_token_does_not_open_the_room_socket(
    server: AppServer, pool: Any
) -> None:
    """The console session's token (its HttpOnly cookie) is not a room-socket token: it carries
    the session (``sv``, ``sid``), which only the ``/api/`` routes check. Taken as the room's
    host, a copy kept after signing out would still get the ``stats`` frames and comment as the
    host. It is refused like an agent's (``wrong_role``, 4401); the console's socket token
    (``POST /api/host/rooms/{id}/socket-token``) joins."""
    host = await hosts.create_host(pool, f"sock-{id(server)}", "sock-password-1")
    room = await pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state, started_at) VALUES ($1, 'r', 'live', now())"
        " RETURNING id",
        host.id,
    )
    async with aiohttp.ClientSession() as s:
        async with s.post(
            server.url + "/api/console/session",
            json={"name": host.name, "password": "sock-password-1"},
        ) as resp:
            assert resp.status == 201
            csrf = (await resp.json())["csrf_token"]
            cookie = resp.cookies[COOKIE].value
        bearer = {"Authorization": f"Bearer {cookie}"}
        async with s.post(f"{server.url}/api/host/rooms/{room}/socket-token", headers=bearer) as r:
            assert r.status == 201
            socket_token = (await r.json())["token"]
        base = f"{server.ws_url()}?room={room}"
        await expect_close(f"{base}&token={cookie}", 4401, "wrong_role")  # signed in, too
        async with websockets.connect(f"{base}&token={socket_token}") as ws:
            assert orjson.loads(await ws.recv())["type"] == "welcome"
        async with s.delete(
            server.url + "/api/console/session",
            headers={"Cookie": f"{COOKIE}={cookie}", "X-CSRF-Token": csrf},
        ) as resp:
            assert resp.status == 200
        await expect_close(f"{base}&token={cookie}", 4401, "wrong_role")  # signed out
        async with websockets.connect(base, additional_headers=bearer) as ws:
            assert orjson.loads(await ws.recv())["code"] == "wrong_role"
