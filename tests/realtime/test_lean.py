"""The lean viewer path over real sockets: the router in front of aiohttp, the 101 handshake, the
RFC 6455 frame parser, the close handshake, the heartbeat sweep and shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import Callable
from typing import Any

import pytest
import websockets

from livecommerce import keys
from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.realtime import frames
from tests.realtime.conftest import World
from tests.realtime.rawws import KEY, RawWS, accept_for, frame, text, upgrade_head
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import AppServer, http, start_app, stop_app


def ws_path(world: World, **extra: str) -> str:
    path = f"/ws?room={world.room_id}&token={world.viewer_token()}"
    return path + "".join(f"&{k}={v}" for k, v in extra.items())


async def joined(server: AppServer, world: World) -> RawWS:
    """A raw viewer past its welcome."""
    raw = await RawWS.open(server.url)
    await raw.handshake(ws_path(world))
    welcome = await raw.recv_json()
    assert welcome["type"] == "welcome"
    return raw


async def test_upgrade_answer_has_accept_and_no_extension(server: AppServer, world: World) -> None:
    """101 with the RFC 6455 accept value; compression offered by the client is not taken."""
    raw = await RawWS.open(server.url)
    headers = await raw.handshake(
        ws_path(world), headers={"Sec-WebSocket-Extensions": "permessage-deflate"}
    )
    assert headers["sec-websocket-accept"] == accept_for(KEY)
    assert headers["upgrade"].lower() == "websocket"
    assert "sec-websocket-extensions" not in headers
    assert (await raw.recv_json())["type"] == "welcome"
    raw.close()


async def test_token_in_authorization_header(server: AppServer, world: World) -> None:
    """``Authorization: Bearer`` works like ``?token=`` on the lean path."""
    raw = await RawWS.open(server.url)
    await raw.handshake(
        f"/ws?room={world.room_id}",
        headers={"Authorization": f"Bearer {world.viewer_token()}"},
    )
    assert (await raw.recv_json())["type"] == "welcome"
    raw.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-WebSocket-Key": None},
        {"Sec-WebSocket-Key": "c2hvcnQ="},  # 5 bytes, not 16
        {"Sec-WebSocket-Key": "!!!not base64!!!"},
        {"Sec-WebSocket-Version": "12"},
        {"Connection": "keep-alive"},
        {"Upgrade": "h2c"},
    ],
)
async def test_bad_upgrades_get_aiohttp_json_400(
    server: AppServer, world: World, headers: dict[str, str | None]
) -> None:
    """An invalid upgrade is not taken by the lean path: aiohttp answers 400 websocket_expected."""
    raw = await RawWS.open(server.url)
    await raw.send(upgrade_head(ws_path(world), headers=headers))  # type: ignore[arg-type]
    status, resp = await raw.response_head()
    assert status == 400
    assert b'"code":"websocket_expected"' in await raw.http_body(resp)
    raw.close()


async def test_http_on_the_same_port_is_aiohttp(server: AppServer) -> None:
    """Non-WebSocket requests are served by aiohttp: JSON errors, 405, pipelining, slow heads."""
    status, body = await http("GET", server.url + "/ws")
    assert status == 400
    assert body["error"]["code"] == "websocket_expected"  # type: ignore[index]
    status, body = await http("POST", server.url + "/ws")
    assert status == 405
    status, body = await http("GET", server.url + "/healthz")
    assert status == 200
    raw = await RawWS.open(server.url)
    # Two pipelined requests in one write, then a head that arrives one byte at a time.
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers = await raw.response_head()
    assert status == 200
    await raw.http_body(headers)
    status, headers = await raw.response_head()
    assert status == 404
    await raw.http_body(headers)
    raw.close()
    raw = await RawWS.open(server.url)
    for byte in b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n":
        await raw.send(bytes([byte]))
    status, _ = await raw.response_head()
    assert status == 200
    raw.close()


async def test_upgrade_head_split_across_writes(server: AppServer, world: World) -> None:
    """A head that arrives in pieces is still recognised as an upgrade."""
    raw = await RawWS.open(server.url)
    head = upgrade_head(ws_path(world))
    for i in range(0, len(head), 7):
        await raw.send(head[i : i + 7])
        await asyncio.sleep(0)
    status, _ = await raw.response_head()
    assert status == 101
    assert (await raw.recv_json())["type"] == "welcome"
    raw.close()


async def test_oversized_head_goes_to_aiohttp(server: AppServer, world: World) -> None:
    """A head over the router's bound is aiohttp's to answer (never a lean upgrade)."""
    raw = await RawWS.open(server.url)
    await raw.send(upgrade_head(ws_path(world), headers={"X-Pad": "p" * 20000}))
    status, _ = await raw.response_head()
    assert status in (400, 431, 503)
    raw.close()


async def test_frames_pipelined_after_the_head(server: AppServer, world: World) -> None:
    """Frames sent in the same write as the upgrade head are handled after the welcome."""
    raw = await RawWS.open(server.url)
    await raw.send(upgrade_head(ws_path(world)) + text({"type": "ping", "t": 7}))
    status, _ = await raw.response_head()
    assert status == 101
    assert (await raw.recv_json())["type"] == "welcome"
    assert await raw.recv_json() == {"type": "pong", "t": 7}
    raw.close()


async def test_fragmented_message_and_control_frames(server: AppServer, world: World) -> None:
    """A text message in three fragments with a ping between them; ping gets pong with its
    payload; unsolicited pongs are ignored."""
    raw = await joined(server, world)
    msg = b'{"type":"ping","t":99}'
    await raw.send(frame(0x1, msg[:5], fin=False))
    await raw.send(frame(0x9, b"hb"))
    await raw.send(frame(0x0, msg[5:12], fin=False) + frame(0xA, b"x") + frame(0x0, msg[12:]))
    assert await raw.recv_frame() == (0xA, b"hb")
    assert await raw.recv_json() == {"type": "pong", "t": 99}
    raw.close()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(0x1, b'{"type":"ping"}', mask=False), 1002),  # unmasked
        (frame(0x1, b'{"type":"ping"}', rsv=4), 1002),  # RSV1 without an extension
        (frame(0x3, b"?"), 1002),  # reserved opcode
        (frame(0x0, b"orphan"), 1002),  # continuation with nothing to continue
        (frame(0x1, b"{", fin=False) + frame(0x1, b"}"), 1002),  # new message mid-fragment
        (frame(0x9, b"p", fin=False), 1002),  # fragmented control frame
        (frame(0x9, b"p" * 126), 1002),  # control frame over 125 bytes
        (frame(0x1, b'{"t":"\xff\xfe"}'), 1007),  # invalid UTF-8
        (frame(0x1, b"x" * 5000), 1009),  # over rooms.max_frame_bytes
        (frame(0x1, b"x" * 3000, fin=False) + frame(0x0, b"x" * 3000), 1009),  # fragments add up
        (frame(0x8, b"\x03\xed"), 1002),  # close code 1005 may not be sent
        (frame(0x8, b"\x03"), 1002),  # a one-byte close payload
        (frame(0x8, b"\x03\xe8\xff"), 1007),  # close reason not UTF-8
        (frame(0x2, b"\x00\x01"), 1003),  # binary
    ],
)
async def test_protocol_violations_close_with_their_code(
    server: AppServer, world: World, data: bytes, code: int
) -> None:
    """Each broken frame closes the connection with the RFC 6455 (or documented) code."""
    raw = await joined(server, world)
    await raw.send(data)
    assert await raw.close_code() == code
    assert await raw.at_eof()
    raw.close()
    await wait_until(lambda: server.app[keys.HUB].local_viewers(world.room_id) == 0)


async def test_huge_length_is_refused_from_the_header(server: AppServer, world: World) -> None:
    """A frame announcing 2**40 bytes is refused (1009) before any payload is sent."""
    raw = await joined(server, world)
    await raw.send(struct.pack("!BBQ", 0x81, 0xFF, 2**40) + b"mask")
    assert await raw.close_code() == 1009
    raw.close()


async def test_binary_frame_gets_error_then_1003(server: AppServer, world: World) -> None:
    """Binary frames: an ``error`` frame binary_not_supported, then close 1003."""
    raw = await joined(server, world)
    await raw.send(frame(0x2, b"\x00"))
    assert (await raw.recv_json())["code"] == "binary_not_supported"
    assert await raw.close_code() == 1003
    raw.close()


async def test_client_close_is_echoed(server: AppServer, world: World) -> None:
    """A client close frame is answered with the same code, then the server closes TCP."""
    raw = await joined(server, world)
    await raw.send(frame(0x8, struct.pack("!H", 4000) + b"bye"))
    assert await raw.close_code() == 4000
    assert await raw.at_eof()
    raw.close()
    hub = server.app[keys.HUB]
    await wait_until(lambda: hub.local_viewers(world.room_id) == 0 and not hub.per_ip)


async def test_refused_handshake_waits_for_the_close_echo(server: AppServer, world: World) -> None:
    """A refused join sends error + close; the server closes TCP once the client answers."""
    raw = await RawWS.open(server.url)
    await raw.handshake(f"/ws?token={world.viewer_token()}")
    assert (await raw.recv_json())["code"] == "bad_request"
    assert await raw.close_code() == 4400
    await raw.send(frame(0x8, struct.pack("!H", 4400)))
    assert await raw.at_eof()
    raw.close()


async def test_heartbeat_pings_quiet_and_drops_silent_viewers(
    make_server: Callable[..., Any], settings: Settings, world: World
) -> None:
    """With no timer per viewer: a viewer that never answers is pinged, then dropped; one that
    answers pings (the websockets client does) stays and still gets room frames."""
    srv: AppServer = await make_server(
        dataclasses.replace(
            settings, rooms=dataclasses.replace(settings.rooms, heartbeat_seconds=1)
        )
    )
    silent = await joined(srv, world)
    alive = TestViewer(srv.ws_url(), world.room_id, world.viewer_token())
    await alive.connect()
    hub = srv.app[keys.HUB]
    opcodes = []
    try:
        while True:
            opcode, _ = await silent.recv_frame()
            opcodes.append(opcode)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    assert frames.OP_PING in opcodes
    await wait_until(lambda: hub.local_viewers(world.room_id) == 1)
    await asyncio.sleep(3.5)  # a few more sweeps
    assert not alive.closed.is_set()
    status, _ = await http(
        "POST",
        f"{srv.url}/api/rooms/{world.room_id}/push",
        json={"goods_id": world.goods_ids[0]},
        headers=world.host_headers(),
    )
    assert status == 201
    await wait_until(lambda: len(alive.of_type("goods_push")) == 1)
    silent.close()
    await alive.close()


async def test_shutdown_closes_every_socket_with_1012(
    settings: Settings, world: World, pool: Any, redis: Any
) -> None:
    """Stopping the app closes joined viewers with 1012 and releases every admission."""
    srv = await start_app(create_app(settings))
    viewers = [TestViewer(srv.ws_url(), world.room_id, world.viewer_token()) for _ in range(5)]
    for v in viewers:
        await v.connect()
    raw = await joined(srv, world)
    await stop_app(srv)
    for v in viewers:
        await asyncio.wait_for(v.closed.wait(), 15)
        assert v.ws is not None
        assert v.ws.close_code == 1012
    assert await raw.close_code() == 1012
    raw.close()
    assert len(srv.app[keys.WEBSOCKETS]) == 0
    assert not srv.app[keys.HUB].per_ip


async def test_websockets_client_full_exchange(server: AppServer, world: World) -> None:
    """A standard client (websockets) with a fragmented send and a normal close."""
    url = f"{server.ws_url()}?room={world.room_id}&token={world.viewer_token()}"
    async with websockets.connect(url) as ws:
        assert '"welcome"' in str(await ws.recv())
        await ws.send(iter(['{"type":', '"ping",', '"t":1}']))
        assert await ws.recv() == '{"type":"pong","t":1}'
    assert ws.close_code == 1000


def test_parse_frame_is_incremental() -> None:
    """Every prefix of a frame is 'incomplete', the whole frame parses, the mask is removed."""
    data = frame(0x1, b"hello world" * 20)
    for cut in range(len(data)):
        assert frames.parse_frame(data[:cut], 0, 4096) is None
    fin, opcode, payload, end = frames.parse_frame(data, 0, 4096)  # type: ignore[misc]
    assert (fin, opcode, payload, end) == (True, 1, b"hello world" * 20, len(data))
    assert frames.close_frame(1000, "é" * 100)[2:] == struct.pack("!H", 1000) + ("é" * 61).encode()
