"""Wiring of the realtime pieces into the app: one cleanup context owns broker, hub and tasks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import HttpVersion11, web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.api.contract import RawResponse, add_routes, raw_route
from livecommerce.api.openapi import Error
from livecommerce.errors import AppError, Unavailable
from livecommerce.realtime.broker import Broker
from livecommerce.realtime.endpoint import Endpoint
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.node import Node
from livecommerce.realtime.upgrade import WsQuery

log = logging.getLogger("livecommerce.socket")


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    redis = app[keys.REDIS]
    broker = Broker(redis, settings.rooms)
    hub = Hub(app[keys.METRICS], settings.rooms.send_buffer_max_bytes)
    node = Node(
        redis, broker, hub, app[keys.METRICS], settings.rooms.tick_seconds, app[keys.PG_POOL]
    )
    sockets = app[keys.WEBSOCKETS]
    app[keys.BROKER] = broker
    app[keys.HUB] = hub
    app[keys.NODE] = node
    app[keys.VIEWER_ENDPOINT] = Endpoint(
        cfg=settings.rooms,
        secret=settings.secret,
        hub=hub,
        broker=broker,
        node=node,
        metrics=app[keys.METRICS],
        pool=app[keys.PG_POOL],
        sockets=sockets,
        outages=app[keys.OUTAGES],
    )
    async with (
        running(node.run_subscriber(), "room-subscriber"),
        running(node.run_ticker(), "presence-ticker"),
        running(sockets.run_heartbeat(settings.rooms.heartbeat_seconds), "ws-heartbeat"),
    ):
        yield


async def websocket_fallback(request: web.Request) -> web.StreamResponse:
    """The viewer WebSocket: room frames live, comments and likes (docs/protocol.md).

    A clean upgrade on a fresh connection is taken in front of aiohttp by the lean path
    (``realtime/site.py``), which answers 101 and then checks the query and the token: a
    defect closes the socket (4400 bad query, 4401 token, 4404 no such room, 4410 ended, 4429
    too many connections; docs/protocol.md). This handler sees only the rest: not a
    WebSocket upgrade (400 ``websocket_expected``), a malformed one (400 ``bad_upgrade``), or
    an upgrade on a keep-alive connection that carried HTTP first, or with no lean site in
    front (503 ``unavailable``: retry on a fresh connection). The query is not parsed here.
    """
    if not web.WebSocketResponse().can_prepare(request).ok:
        raise AppError("this endpoint speaks WebSocket only", code="websocket_expected")
    if (
        request.version != HttpVersion11
        or request.body_exists
        or "Content-Length" in request.headers
        or "Transfer-Encoding" in request.headers
        or not request.raw_path.startswith("/")
        or len(request.headers.getall("Host", [])) != 1
    ):
        # Not retryable as it is (a fresh connection would not help): say what is wrong.
        raise AppError(
            "a WebSocket upgrade is GET /ws?... HTTP/1.1 with one Host header and no body",
            code="bad_upgrade",
        )
    log.warning("WebSocket upgrade reached aiohttp (no lean site, or a reused connection)")
    raise Unavailable("open the WebSocket on a fresh connection")


ROUTES = (
    raw_route("GET", "/ws", websocket_fallback, query=WsQuery, tag="realtime", responses=(
        RawResponse(101, "Switching to WebSocket; the first frame is `welcome` (or `resync`), "
                    "or an `error` and a close code when the query or token is refused"),
        RawResponse(400, "Not a WebSocket upgrade (`websocket_expected`) or a malformed one "
                    "(`bad_upgrade`)", "application/json", Error),
        RawResponse(503, "The upgrade reached aiohttp (a reused keep-alive connection): open "
                    "the WebSocket on a fresh connection", "application/json", Error),
    ), rules=("not a WebSocket upgrade (`websocket_expected`): a plain HTTP client always is",)),
)  # fmt: skip


def setup(app: web.Application) -> None:
    """The realtime cleanup context and the ``/ws`` route (called once from ``create_app``)."""
    app.cleanup_ctx.append(realtime_ctx)
    add_routes(app, ROUTES)
