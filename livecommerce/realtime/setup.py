"""Wiring of the realtime pieces into the app: one cleanup context owns broker, hub and tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.realtime.broker import Broker
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.node import Node
from livecommerce.realtime.socket import websocket_handler


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    redis = app[keys.REDIS]
    broker = Broker(redis, settings.rooms)
    hub = Hub(app[keys.METRICS], settings.rooms.send_buffer_max_bytes)
    node = Node(redis, broker, hub, app[keys.METRICS], settings.rooms.tick_seconds)
    app[keys.BROKER] = broker
    app[keys.HUB] = hub
    app[keys.NODE] = node
    async with (
        running(node.run_subscriber(), "room-subscriber"),
        running(node.run_ticker(), "presence-ticker"),
    ):
        yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(realtime_ctx)
    app.router.add_get("/ws", websocket_handler)
