"""Wiring of analytics into the app: the writer, partition maintenance, the live counters,
the socket's ``track`` frame and the routes (called once from ``create_app``)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from datetime import date

from aiohttp import web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.api.contract import add_routes, route
from livecommerce.growth.analytics import ingest_api, live, partitions
from livecommerce.growth.analytics.writer import Writer

log = logging.getLogger("livecommerce.analytics")


def back_days(max_past_seconds: int) -> int:
    """Days behind today that must have a partition (clamped client times reach that far)."""
    return math.ceil(max_past_seconds / 86400) + 1


async def _maintain_forever(app: web.Application) -> None:
    cfg = app[keys.SETTINGS].analytics
    while True:
        await asyncio.sleep(cfg.maintenance_interval_seconds)
        try:
            made, dropped = await partitions.maintain(
                app[keys.PG_POOL],
                retention_days=cfg.retention_days,
                ahead_days=cfg.partitions_ahead_days,
                back_days=back_days(cfg.max_past_seconds),
            )
            if made or dropped:
                log.info("analytics partitions: created %s, dropped %s", made, dropped)
        except Exception as exc:  # retried next interval; the writer also makes missing days
            log.warning("analytics partition maintenance failed: %s", exc)


async def analytics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Partitions for today, the writer (flushed on shutdown), maintenance and live tasks."""
    settings = app[keys.SETTINGS]
    cfg = settings.analytics
    pool = app[keys.PG_POOL]
    await partitions.maintain(
        pool,
        retention_days=cfg.retention_days,
        ahead_days=cfg.partitions_ahead_days,
        back_days=back_days(cfg.max_past_seconds),
    )

    async def ensure_days(days: set[date]) -> None:
        async with pool.acquire() as conn:
            for day in days:
                await partitions.create_partition(conn, day)

    counters = live.LiveCounters(app[keys.REDIS])
    writer = Writer(
        pool,
        max_events=cfg.buffer_max_events,
        flush_events=cfg.flush_max_events,
        flush_interval=cfg.flush_interval_ms / 1000,
        ensure_days=ensure_days,
        on_stored=counters.add,
    )
    app[keys.ANALYTICS_WRITER] = writer
    app[keys.ANALYTICS_LIVE] = counters
    endpoint = app.get(keys.VIEWER_ENDPOINT)
    if endpoint is not None:
        endpoint.tracker = live.socket_tracker(writer, cfg)
    writer.start()
    try:
        async with running(_maintain_forever(app), "analytics-maintenance"):
            yield
    finally:
        if endpoint is not None:
            endpoint.tracker = None
        await writer.close()  # graceful: everything buffered is written before the pool closes


def setup(app: web.Application) -> None:
    """Add the analytics cleanup context (after PostgreSQL, Redis and realtime) and routes."""
    app.cleanup_ctx.append(analytics_ctx)
    add_routes(app, ROUTES)


ROUTES = (
    route("POST", "/api/events", ingest_api.track, auth=("user", "viewer"), tag="analytics"),
)  # fmt: skip
