"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Literal, cast

from aiohttp import web
from msgspec import Meta
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio.cluster import RedisCluster

from livecommerce import keys
from livecommerce.api.contract import Call, Model, RawResponse, Reply, add_routes, raw_route, route
from livecommerce.redis_clients import is_cluster, unanswered_primaries

READY_TIMEOUT_SECONDS = 2.0


class Health(Model):
    status: Literal["ok"]
    node: Annotated[str | None, Meta(description="Which node answered")]


class Readiness(Model):
    status: Literal["ready", "unavailable"]
    checks: Annotated[
        dict[str, str],
        Meta(
            description='Per backend: "ok" or "error: <exception class>"; on a Redis Cluster '
            'each failing primary with its address: "error: ConnectionError (10.0.0.7:6379)"'
        ),
    ]


class ProbeFailed(Exception):
    """A probe's own account of what failed, reported as ``error: <message>``."""


async def healthz(call: Call[None, None]) -> Health:
    """Liveness: the process is alive and serving HTTP."""
    node = call.app.get(keys.NODE)
    return Health(status="ok", node=node.id if node is not None else None)


async def readyz(call: Call[None, None]) -> Reply[Readiness]:
    """Readiness: PostgreSQL and Redis both answer (503 naming the failing one otherwise).

    On a Redis Cluster, Redis answers when every slot range has a primary that answers PING
    (all primaries pinged concurrently; the client's topology refreshed when one does not, so
    a promoted replica counts as soon as the cluster has promoted it):
    :func:`~livecommerce.redis_clients.unanswered_primaries`."""
    app = call.app
    checks: dict[str, str] = {}

    async def pg() -> None:
        async with app[keys.PG_POOL].acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def redis() -> None:
        client = app[keys.REDIS]
        if not is_cluster(client):
            await client.ping()
            return
        # A little inside the bound below, so a slow node is named rather than cut off.
        failed = await unanswered_primaries(
            cast("RedisCluster", client), READY_TIMEOUT_SECONDS * 0.9
        )
        if failed:
            raise ProbeFailed(", ".join(f"{exc} ({where})" for where, exc in failed.items()))

    for name, probe in (("postgres", pg), ("redis", redis)):
        try:
            await asyncio.wait_for(probe(), READY_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except ProbeFailed as exc:
            checks[name] = f"error: {exc}"
        except Exception as exc:  # any failure means "not ready", reported by class name
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return Reply(
        Readiness(status="ready" if ready else "unavailable", checks=checks),
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this node's metrics."""
    m = request.app[keys.METRICS]
    with contextlib.suppress(KeyError):
        pool = request.app[keys.PG_POOL]
        m.pool_size.set(pool.get_size())
        m.pool_in_use.set(pool.get_size() - pool.get_idle_size())
    m.open_sockets.set(len(request.app[keys.WEBSOCKETS]))
    body = generate_latest(m.registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


ROUTES = (
    route("GET", "/healthz", healthz),
    route("GET", "/readyz", readyz, also=(503,)),
    raw_route("GET", "/metrics", metrics, responses=(
        RawResponse(200, "Prometheus text exposition", "text/plain"),
    )),
)  # fmt: skip


def setup(app: web.Application) -> None:
    add_routes(app, ROUTES)
