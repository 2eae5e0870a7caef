"""Hostile or broken clients over real sockets: unfinished heads are timed out and capped per
address (lean path and aiohttp alike), malformed requests and bodies get the JSON error shape,
and the log gets one rate-limited line instead of a traceback per request."""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from livecommerce.config import Settings
from livecommerce.realtime.site import LeanSite
from tests.realtime.conftest import World
from tests.realtime.rawws import RawWS, upgrade_head
from tests.support import AppServer, http

CAP = 20
TIMEOUT = 0.5


@pytest.fixture
async def strict(make_server: Callable[..., Any], settings: Settings) -> AppServer:
    """The app with a short head timeout, a small per-address cap and a short keep-alive."""
    server: AppServer = await make_server(
        settings.with_server(
            request_head_timeout_seconds=TIMEOUT,
            request_body_timeout_seconds=TIMEOUT,
            max_unfinished_heads_per_ip=CAP,
            keepalive_timeout_seconds=TIMEOUT,
        )
    )
    return server


def site(server: AppServer) -> LeanSite:
    (only,) = server.runner.sites
    assert isinstance(only, LeanSite)
    return only


async def answer(raw: RawWS) -> tuple[int, dict[str, Any] | None, bool]:
    """(status, JSON body or None, closed after it) of the one response on ``raw``."""
    status, headers = await raw.response_head()
    body = orjson.loads(await raw.http_body(headers)) if "content-length" in headers else None
    closed = await asyncio.wait_for(raw.reader.read(), 5) == b""
    return status, body, closed


async def test_unfinished_heads_are_capped_per_address_then_timed_out(
    strict: AppServer, world: World
) -> None:
    """CAP idle or half-sent heads (HTTP and WebSocket) from one address are held; the next ones
    get 429 and are closed at once; after the timeout every held one gets 408 and is closed;
    then the address is served normally again and nothing is left counted."""
    held: list[RawWS] = []
    partial = [
        b"",
        b"GET /healthz HTTP/1.1\r\nHo",
        b"POST /api/goods HTTP/1.1\r\nContent-Length: 5\r\n",
        upgrade_head(f"/ws?room={world.room_id}&token={world.viewer_token()}")[:-2],
    ]
    for i in range(CAP):
        raw = await RawWS.open(strict.url)
        if partial[i % len(partial)]:
            await raw.send(partial[i % len(partial)])
        held.append(raw)
    await asyncio.sleep(0.05)
    assert site(strict).unfinished == {"127.0.0.1": CAP}
    for _ in range(5):
        extra = await RawWS.open(strict.url)
        status, body, closed = await answer(extra)
        assert status == 429
        assert body is not None
        assert body["error"]["code"] == "too_many_connections"
        assert closed
        extra.close()
    for raw in held:
        status, body, closed = await answer(raw)
        assert status == 408
        assert body is not None
        assert body["error"]["code"] == "request_timeout"
        assert closed
        raw.close()
    assert site(strict).unfinished == {}
    assert (await http("GET", strict.url + "/healthz"))[0] == 200


async def test_many_idle_connections_do_not_hold_descriptors(strict: AppServer) -> None:
    """200 idle connections from one address: all are closed by the server within the head
    timeout (plus slack), none held open."""
    conns = await asyncio.gather(*(asyncio.open_connection(*hostport(strict)) for _ in range(200)))
    reads = await asyncio.wait_for(
        asyncio.gather(*(reader.read() for reader, _ in conns)), TIMEOUT * 4 + 5
    )
    assert all(r == b"" or r.startswith(b"HTTP/1.1 4") for r in reads)
    for _, writer in conns:
        writer.close()
    assert site(strict).unfinished == {}


def hostport(server: AppServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


async def test_keepalive_connection_stuck_in_a_later_head_is_closed(strict: AppServer) -> None:
    """After one complete request, a keep-alive connection that sends half a head is closed by
    aiohttp's keep-alive timer (server.keepalive_timeout_seconds)."""
    raw = await RawWS.open(strict.url)
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers = await raw.response_head()
    assert status == 200
    await raw.http_body(headers)
    await raw.send(b"GET /healthz HTTP/1.1\r\nHo")
    assert await asyncio.wait_for(raw.reader.read(), TIMEOUT * 4 + 5) == b""
    raw.close()


async def test_trickled_body_is_timed_out(strict: AppServer, world: World) -> None:
    """A complete head whose body never finishes: 408 ``request_timeout`` after
    server.request_body_timeout_seconds and the connection closed; a prompt body still works."""
    raw = await RawWS.open(strict.url)
    await raw.send(
        b"POST /api/goods HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {world.host_token}\r\nContent-Length: 100\r\n\r\n".encode()
        + b'{"title":'
    )
    status, body, closed = await answer(raw)
    assert status == 408
    assert body is not None
    assert body["error"]["code"] == "request_timeout"
    assert closed
    raw.close()
    status, _ = await http(
        "POST",
        strict.url + "/api/goods",
        json={"title": "T", "price_fen": 1, "stock": 1},
        headers=world.host_headers(),
    )
    assert status == 201


async def test_oversized_head_is_431_json(strict: AppServer) -> None:
    """A head that passes 16 KiB without ending is answered 431 in the JSON error shape."""
    raw = await RawWS.open(strict.url)
    await raw.send(b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"p" * 20000)
    status, body, closed = await answer(raw)
    assert status == 431
    assert body is not None
    assert body["error"]["code"] == "request_header_fields_too_large"
    assert closed
    raw.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: t\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello\r\n\r\n",
    ],
)
async def test_malformed_requests_get_json_400_and_one_log_line(
    server: AppServer, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed request gets a JSON 400 (never text/plain); 30 of them log at most one
    warning line and no traceback."""
    caplog.set_level(logging.DEBUG)
    for _ in range(30):
        raw = await RawWS.open(server.url)
        await raw.send(request_bytes)
        status, headers = await raw.response_head()
        assert status == 400
        assert headers["content-type"].startswith("application/json")
        body = orjson.loads(await raw.http_body(headers))
        assert body["error"]["code"] == "bad_request"
        raw.close()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) <= 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_body_not_matching_its_content_encoding_is_400(
    server: AppServer, world: World, encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``Content-Encoding: gzip|deflate|br`` over a plain JSON body: 400 ``bad_encoding`` in the
    JSON shape, no 500 and no traceback; the same body really compressed is accepted."""
    caplog.set_level(logging.DEBUG)
    body = orjson.dumps({"title": "T", "price_fen": 100, "stock": 1})
    headers = {
        "Authorization": f"Bearer {world.host_token}",
        "Content-Type": "application/json",
        "Content-Encoding": encoding,
    }
    status, resp = await http("POST", server.url + "/api/goods", data=body, headers=headers)
    assert status == 400, resp
    assert isinstance(resp, dict)
    assert resp["error"]["code"] == "bad_encoding"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    if encoding != "br":
        packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
        status, resp = await http("POST", server.url + "/api/goods", data=packed, headers=headers)
        assert status == 201, resp
