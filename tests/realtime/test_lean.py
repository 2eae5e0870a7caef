"""The lean viewer path over real sockets: the router in front of aiohttp, the 101 handshake, the
RFC 6455 frame parser, the close handshake, the heartbeat sweep and shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
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
    # RFC 6455 5.2: the most significant bit of a 64-bit length must be 0 (a protocol error).
    raw = await joined(server, world)
    await raw.send(struct.pack("!BBQ", 0x81, 0xFF, 2**63 + 5) + b"mask")
    assert await raw.close_code() == 1002
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


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 255, 256, 257, 258, 259, 4096, 70_001])
def test_unmask_is_rfc6455_xor_on_both_sides_of_the_numpy_size(size: int) -> None:
    """Byte i of the payload XOR byte i % 4 of the mask, below and above the size from which
    unmask switches to numpy, for lengths that are and are not multiples of 4, from bytes and
    from a bytearray (the reader's buffer)."""
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    mask = b"\x9a\x01\xff\x5c"
    want = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert frames.unmask(payload, mask) == want
    assert frames.unmask(bytearray(payload), bytearray(mask)) == want
    assert type(frames.unmask(bytearray(payload), bytearray(mask))) is bytes


# ---------------------------------------------------------------- review regressions


async def _small_rcvbuf(url: str) -> RawWS:
    """A client with a tiny receive buffer, so the server's output backs up quickly."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.setblocking(False)
    await asyncio.get_running_loop().sock_connect(s, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=s)
    return RawWS(reader, writer)


async def _backed_up(srv: AppServer, world: World) -> tuple[RawWS, Any]:
    """An open viewer that never reads, with 16 KiB+ of room frames unsent (below eviction)."""
    from livecommerce.realtime.broker import PublishItem

    raw = await _small_rcvbuf(srv.url)
    try:
        await raw.handshake(ws_path(world))
        await raw.recv_json()  # welcome
        port = raw.writer.get_extra_info("sockname")[1]
        conn = next(
            c
            for c in srv.app[keys.WEBSOCKETS].conns
            if c.transport.get_extra_info("peername")[1] == port
        )
        broker = srv.app[keys.BROKER]
        item = PublishItem(world.room_id, {"type": "comment", "text": "x" * 4000})
        for _ in range(2000):
            await broker.publish_many([item] * 20)
            await asyncio.sleep(0.005)
            if conn.transport.get_write_buffer_size() > 16_384:
                break
        assert 0 < conn.transport.get_write_buffer_size() < srv.app[keys.HUB].send_buffer_max
    except BaseException:
        raw.close()
        raise
    return raw, conn


async def test_peer_close_without_reading_is_bounded(
    make_server: Callable[..., Any], settings: Settings, world: World
) -> None:
    """A peer that sends close but never reads our output cannot hold sockets past the limit:
    each is dropped within the close bound (it used to stay CLOSING forever, slot released)."""
    rooms = dataclasses.replace(settings.rooms, max_connections_per_ip=2)
    srv: AppServer = await make_server(dataclasses.replace(settings, rooms=rooms))
    held: list[RawWS] = []
    try:
        for _ in range(3):
            raw, _ = await _backed_up(srv, world)
            held.append(raw)
            await raw.send(frame(0x8, struct.pack("!H", 1000)))
        await wait_until(lambda: not srv.app[keys.WEBSOCKETS].conns, within=10)
        assert srv.app[keys.HUB].per_ip == {}
    finally:
        for raw in held:
            raw.close()


async def test_half_close_with_output_pending_is_dropped(server: AppServer, world: World) -> None:
    """A peer that half-closes while our output is backed up is dropped at once (it used to
    stay until a later close, then forever in CLOSING)."""
    raw, conn = await _backed_up(server, world)
    try:
        raw.writer.write_eof()
        await wait_until(lambda: conn not in server.app[keys.WEBSOCKETS].conns, within=10)
        assert server.app[keys.HUB].per_ip == {}
    finally:
        raw.close()


async def test_non_ascii_digits_are_a_bad_request(server: AppServer, world: World) -> None:
    """room=² passes str.isdigit(); it is refused with 4400, not an internal error (1011)."""
    raw = await RawWS.open(server.url)
    await raw.handshake(f"/ws?room=%C2%B2&token={world.viewer_token()}")
    assert await raw.close_code() == 4400
    raw.close()


async def test_refused_join_still_reads_the_close_reply(server: AppServer, world: World) -> None:
    """Reading paused during a slow join (held input over the limit) resumes when the join is
    refused, so the peer's close reply completes the handshake (no reset after the bound)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    broker = server.app[keys.BROKER]
    real = broker.snapshot

    async def failing(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(1.0)
        raise RedisConnectionError("down")

    broker.snapshot = failing
    try:
        raw = await RawWS.open(server.url)
        await raw.handshake(ws_path(world))
        ping = frame(0x9, b"p" * 125)
        for _ in range(10):
            await raw.send(ping * 100)  # 128 KiB while joining
        while True:
            op, payload = await asyncio.wait_for(raw.recv_frame(), 10)
            if op == 0x8:
                break
        code = struct.unpack("!H", payload[:2])[0]
        assert code == 1012
        await raw.send(frame(0x8, struct.pack("!H", code)))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(raw.reader.read(), 10)  # EOF, not ConnectionResetError
        assert loop.time() - started < 1.5  # the close bound is 2 s
        raw.close()
    finally:
        broker.snapshot = real


async def test_user_notice_never_precedes_welcome(
    server: AppServer, world: World, redis: Any
) -> None:
    """A per-user notice published while a socket is still joining is not written before the
    welcome (docs/protocol.md: welcome is the first frame)."""
    from livecommerce.auth.tokens import issue_token
    from livecommerce.config import DEV_SECRET

    broker = server.app[keys.BROKER]
    real = broker.snapshot

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)
        return await real(*args, **kwargs)

    broker.snapshot = slow
    try:
        raw = await RawWS.open(server.url)
        token = issue_token(DEV_SECRET, "user", 12, 3600)
        await raw.handshake(f"/ws?room={world.room_id}&token={token}")
        await asyncio.sleep(0.2)
        await redis.publish("lc:user:12", b'{"type":"notice","id":1,"kind":"x","data":{}}')
        assert (await raw.recv_json())["type"] == "welcome"
        raw.close()
    finally:
        broker.snapshot = real


@pytest.mark.parametrize(
    ("name", "extra", "line"),
    [
        ("bare LF in a value", ["X-A: a\nContent-Length: 5"], None),
        ("NUL in a value", ["X-A: a\x00b"], None),
        ("CR in a value", ["X-A: a\rb"], None),
        ("over-long header line", ["X-A: " + "a" * 9000], None),
        ("two Host headers", ["Host: other"], None),
        ("Content-Length: 0", ["Content-Length: 0"], None),
        ("absolute-form target", [], "GET http://test/ws?room={room}&token={tok} HTTP/1.1"),
        ("HTTP/1.0", [], "GET /ws?room={room}&token={tok} HTTP/1.0"),
    ],
)
async def test_odd_upgrade_heads_get_a_400(
    server: AppServer, world: World, name: str, extra: list[str], line: str | None
) -> None:
    """Upgrade heads the lean path does not take are answered 400 by aiohttp (not 101, and
    not a 503 'retry on a fresh connection' that would loop)."""
    tok = world.viewer_token()
    first = (line or "GET /ws?room={room}&token={tok} HTTP/1.1").format(room=world.room_id, tok=tok)
    headers = [
        "Host: test", "Upgrade: websocket", "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13", *extra,
    ]  # fmt: skip
    raw = await RawWS.open(server.url)
    await raw.send(("\r\n".join([first, *headers]) + "\r\n\r\n").encode("latin-1"))
    status, _ = await asyncio.wait_for(raw.response_head(), 5)
    assert status == 400, name
    raw.close()


async def test_ping_flood_is_rate_limited(server: AppServer, world: World) -> None:
    """WebSocket pings count toward the message rate: 200 at once get about a burst of pongs
    (20 at the default 10/s), and the socket stays open."""
    raw = await RawWS.open(server.url)
    try:
        await raw.handshake(ws_path(world))
        await raw.recv_json()  # welcome
        await raw.send(frame(0x9, b"x") * 200 + text({"type": "ping"}))
        pongs = 0
        while True:
            op, payload = await asyncio.wait_for(raw.recv_frame(), 5)
            if op == 0xA:
                pongs += 1
            elif op == 0x1 and b'"error"' in payload:
                break  # the JSON ping after the flood is over the limit too
            elif op == 0x1 and b'"pong"' in payload:
                break
        assert 1 <= pongs <= 30
    finally:
        raw.close()


def test_trickled_input_is_buffered_without_recopying() -> None:
    """Input arriving a byte at a time accumulates in one growing bytearray (plain ``+`` would
    copy the held bytes again per byte: quadratic) and still parses into the same frames."""
    data = frame(0x1, b"hello") + frame(0x9, b"p") + frame(0x1, b"x" * 300)
    buf: bytes | bytearray = b""
    for i in range(len(data)):
        buf = frames.append_bytes(buf, data[i : i + 1])
    assert isinstance(buf, bytearray)
    assert bytes(buf) == data
    pos, got = 0, []
    while (parsed := frames.parse_frame(buf, pos, 4096)) is not None:
        _, opcode, payload, pos = parsed
        got.append((opcode, payload))
    assert got == [(0x1, b"hello"), (0x9, b"p"), (0x1, b"x" * 300)]
