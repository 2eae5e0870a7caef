"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from livecommerce import keys
from livecommerce.httpio import json_response

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving HTTP; ``node`` names which node answered."""
    node = request.app.get(keys.NODE)
    return json_response({"status": "ok", "node": node.id if node is not None else None})


async def readyz(request: web.Request) -> web.Response:
    """PostgreSQL and Redis both answer; 503 naming the failing one otherwise."""
    app = request.app
    checks: dict[str, str] = {}

    async def pg() -> None:
        async with app[keys.PG_POOL].acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def redis() -> None:
        await app[keys.REDIS].ping()

    for name, probe in (("postgres", pg), ("redis", redis)):
        try:
            await asyncio.wait_for(probe(), READY_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready", reported by class name
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
