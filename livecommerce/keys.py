"""Every piece of shared app state, each under a typed ``web.AppKey``."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from livecommerce.config import Settings
from livecommerce.metrics import Metrics
from livecommerce.realtime.broker import Broker
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.node import Node

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)


# Every open WebSocket on this node (added on connect, removed in `finally`); each is closed
# with app.CLOSE_RECONNECT on shutdown.
class OpenSockets:
    """The open WebSockets of this node."""

    def __init__(self) -> None:
        self.sockets: set[web.WebSocketResponse] = set()

    def __len__(self) -> int:
        return len(self.sockets)


WEBSOCKETS = web.AppKey("websockets", OpenSockets)

# Realtime (live rooms): the publisher, this node's rooms, and its background tasks.
BROKER = web.AppKey("broker", Broker)
HUB = web.AppKey("hub", Hub)
NODE = web.AppKey("node", Node)
