"""The application factory: middlewares, the route table and one cleanup context per resource."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from livecommerce import keys, ops
from livecommerce.commerce import routes as commerce_routes
from livecommerce.config import RedisConfig, Settings
from livecommerce.db import close_pool, create_pool
from livecommerce.errors import Handler, error_middleware
from livecommerce.logs import request_id
from livecommerce.metrics import Metrics, metrics_middleware
from livecommerce.realtime.conn import Sockets
from livecommerce.realtime.protocol import CLOSE_RECONNECT
from livecommerce.realtime.setup import setup as realtime_setup
from livecommerce.rooms import routes as rooms_routes
from livecommerce.social import routes as social_routes
from livecommerce.timer import routes as timer_routes

log = logging.getLogger("livecommerce.app")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    token = request_id.set(rid)
    try:
        response = await handler(request)
        if not response.prepared:
            response.headers["X-Request-Id"] = rid
        return response
    finally:
        request_id.reset(token)


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = await create_pool(app[keys.SETTINGS].database)
    app[keys.PG_POOL] = pool
    yield
    await close_pool(pool)


# After a Redis restart every pooled connection is dead. A connection idle for longer than
# this is PINGed before it is handed out (and reconnected if that fails), so a command is not
# sent on a dead connection; one that still fails on a connection error is retried on a new
# connection (REDIS_RETRIES times, jittered backoff 50 ms .. 500 ms). Retrying a command whose
# reply was lost may run it twice; every write that must not (timer publishes, payments,
# flash-sale takes) carries an idempotency key. README "Reliability".
REDIS_HEALTH_CHECK_SECONDS = 1.0
REDIS_RETRIES = 3


def redis_client(cfg: RedisConfig) -> Redis:
    """The app's Redis client. Connects lazily: a Redis that is down at start shows in /readyz
    instead of a crash loop. A blocking pool: past ``max_connections`` a command waits for a
    free connection (up to ``pool_timeout_seconds``) rather than failing with "Too many
    connections" — under a burst of joins that closed viewers with 1012. Stale connections
    after a Redis restart are health-checked and retried (see ``REDIS_RETRIES``): requests
    succeed again as soon as Redis answers."""
    return Redis.from_pool(
        BlockingConnectionPool.from_url(
            cfg.url,
            max_connections=cfg.max_connections,
            timeout=cfg.pool_timeout_seconds,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), REDIS_RETRIES),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=REDIS_HEALTH_CHECK_SECONDS,
        )
    )


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = redis_client(app[keys.SETTINGS].redis)
    app[keys.REDIS] = client
    yield
    await client.aclose()


async def close_websockets(app: web.Application) -> None:
    # All at once, bounded: one unresponsive phone must not hold up the shutdown.
    await app[keys.WEBSOCKETS].close_all(CLOSE_RECONNECT, "reconnect", within=5.0)


def create_app(settings: Settings) -> web.Application:
    """Build the app; resources are created when it starts, never at import."""
    metrics = Metrics()
    app = web.Application(
        middlewares=[request_id_middleware, metrics_middleware(metrics), error_middleware],
        client_max_size=settings.server.max_body_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app[keys.WEBSOCKETS] = Sockets()
    app.cleanup_ctx.append(postgres_ctx)
    app.cleanup_ctx.append(redis_ctx)
    app.on_shutdown.append(close_websockets)
    ops.add_routes(app)
    realtime_setup(app)
    rooms_routes.add_routes(app)
    timer_routes.setup(app)
    commerce_routes.setup(app)
    social_routes.setup(app)
    return app
