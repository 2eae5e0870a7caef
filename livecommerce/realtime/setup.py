"""Wiring of the realtime pieces into the app: one cleanup context owns broker, hub and tasks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import HttpVersion11, web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.errors import AppError, Unavailable
from livecommerce.realtime.broker import Broker
from livecommerce.realtime.endpoint import Endpoint
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.node import Node

log = logging.getLogger("livecommerce.socket")


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    redis = app[keys.REDIS]
    broker = Broker(redis, settings.rooms)
    hub = Hub(app[keys.METRICS], settings.rooms.send_buffer_max_bytes)
    node = Node(redis, broker, hub, app[keys.METRICS], settings.rooms.tick_seconds)
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
    """``GET /ws`` as aiohttp sees it: only requests the lean site did not take get here.

    Not a WebSocket upgrade: 400 ``websocket_expected``. A valid upgrade reaches aiohttp only
    when the app is served without ``realtime.site.LeanSite`` in front, or on a keep-alive
    connection that carried HTTP first: refused with 503 ``unavailable`` (clients retry on a
    fresh connection).
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


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(realtime_ctx)
    app.router.add_get("/ws", websocket_fallback)
