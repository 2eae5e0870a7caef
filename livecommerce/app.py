"""The application factory: middlewares, the route table and one cleanup context per resource."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce import keys, ops
from livecommerce.accesslog import access_log_middleware
from livecommerce.api import docs
from livecommerce.commerce import routes as commerce_routes
from livecommerce.config import Settings
from livecommerce.console import routes as console_routes
from livecommerce.db import close_pool, create_pool
from livecommerce.errors import Handler, error_middleware_for
from livecommerce.growth.analytics import setup as analytics_setup
from livecommerce.growth.experiments import routes as experiments_routes
from livecommerce.http_server import body_timeout_middleware
from livecommerce.logs import request_id
from livecommerce.metrics import Metrics, metrics_middleware
from livecommerce.outage import POSTGRES, REDIS, OutageLog, quiet_library_logs
from livecommerce.realtime.conn import Sockets
from livecommerce.realtime.protocol import CLOSE_RECONNECT
from livecommerce.realtime.setup import setup as realtime_setup
from livecommerce.redis_clients import redis_client
from livecommerce.rooms import routes as rooms_routes
from livecommerce.social import routes as social_routes
from livecommerce.support import routes as support_routes
from livecommerce.timer import routes as timer_routes

log = logging.getLogger("livecommerce.app")

__all__ = ["create_app", "redis_client"]

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


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = redis_client(app[keys.SETTINGS].redis)
    app[keys.REDIS] = client
    yield
    await client.aclose()


def outage_log(app: web.Application) -> OutageLog:
    """The app's outage log, probing the app's pool and Redis client (looked up when probing)."""

    async def pg() -> None:
        async with app[keys.PG_POOL].acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def redis() -> None:
        await app[keys.REDIS].ping()

    quiet_library_logs()
    return OutageLog({POSTGRES: pg, REDIS: redis})


async def outages_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[keys.OUTAGES].close()


async def close_websockets(app: web.Application) -> None:
    # All at once, bounded: one unresponsive phone must not hold up the shutdown.
    await app[keys.WEBSOCKETS].close_all(CLOSE_RECONNECT, "reconnect", within=5.0)


def create_app(settings: Settings) -> web.Application:
    """Build the app; resources are created when it starts, never at import."""
    metrics = Metrics()
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    outages = app[keys.OUTAGES] = outage_log(app)
    app.middlewares.extend(
        [
            request_id_middleware,
            access_log_middleware,
            metrics_middleware(metrics),
            error_middleware_for(outages),
            body_timeout_middleware,
        ]
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app[keys.WEBSOCKETS] = Sockets()
    app.cleanup_ctx.append(postgres_ctx)
    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(outages_ctx)  # probes stop before the pool and client close
    app.on_shutdown.append(close_websockets)
    ops.setup(app)
    docs.setup(app)
    realtime_setup(app)
    rooms_routes.add_routes(app)
    timer_routes.setup(app)
    commerce_routes.setup(app)
    social_routes.setup(app)
    console_routes.setup(app)
    analytics_setup.setup(app)
    experiments_routes.setup(app)
    support_routes.setup(app)  # after commerce: reuses its WeChat client settings
    return app
