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
from livecommerce.aio import check_cancelled, running
from livecommerce.api.contract import HOST, RawResponse, add_routes, raw_route, route
from livecommerce.api.openapi import Error
from livecommerce.db import close_pool
from livecommerce.growth.analytics import (
    ingest_api,
    live,
    live_api,
    partitions,
    reports_api,
    reports_csv,
)
from livecommerce.growth.analytics.events import ACTOR_KINDS, Row
from livecommerce.growth.analytics.live_stats import StatsPusher
from livecommerce.growth.analytics.server_events import PushRecorder
from livecommerce.growth.analytics.writer import Writer
from livecommerce.growth.analytics.writer_pool import create_writer_pool
from livecommerce.growth.experiments.exposures import ExposureRecorder

log = logging.getLogger("livecommerce.analytics")


def back_days(max_past_seconds: int) -> int:
    """Days behind today that must have a partition (clamped client times reach that far)."""
    return math.ceil(max_past_seconds / 86400) + 1


async def _maintain_forever(app: web.Application) -> None:
    cfg = app[keys.SETTINGS].analytics
    while True:
        check_cancelled()
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
    exposures = ExposureRecorder(pool)

    async def on_stored(rows: list[Row]) -> None:
        # Live counters, then bubble-experiment exposures from bubble_impression events.
        try:
            await counters.add(rows)
        finally:
            await exposures.add(rows)

    writer_pool = await create_writer_pool(settings.database, cfg.flushers)
    writer = Writer(
        writer_pool,
        flushers=cfg.flushers,
        max_events=cfg.buffer_max_events,
        flush_events=cfg.flush_max_events,
        flush_interval=cfg.flush_interval_ms / 1000,
        ensure_days=ensure_days,
        on_stored=on_stored,
    )
    app[keys.ANALYTICS_WRITER] = writer
    app[keys.ANALYTICS_LIVE] = counters
    endpoint = app.get(keys.VIEWER_ENDPOINT)
    if endpoint is not None:
        endpoint.tracker = live.socket_tracker(writer, cfg)
    broker = app.get(keys.BROKER)
    recorder = PushRecorder(writer, app[keys.REDIS])
    if broker is not None:
        broker.on_published = recorder
    writer.start()
    hub = app.get(keys.HUB)

    def local_rooms() -> list[int]:
        return list(hub.rooms) if hub is not None else []

    # The console's `stats` frames: one computation per room watched by its host on this node.
    pusher = StatsPusher(
        endpoint.host_conns if endpoint is not None else {},
        counters,
        pool,
        window=reports_api.window_of(settings),
        interval=cfg.live_interval_seconds,
    )

    try:
        async with (
            running(_maintain_forever(app), "analytics-maintenance"),
            running(
                live.sample_minutes(
                    local_rooms, app[keys.REDIS], writer, cfg.live_interval_seconds
                ),
                "analytics-room-minutes",
            ),
            running(pusher.run(), "analytics-live-stats"),
        ):
            yield
    finally:
        if endpoint is not None:
            endpoint.tracker = None
        if broker is not None:
            broker.on_published = None
        await recorder.drain()
        try:
            await writer.close()  # graceful: everything buffered is written before the pool closes
        finally:
            await close_pool(writer_pool)


def setup(app: web.Application) -> None:
    """Add the analytics cleanup context (after PostgreSQL, Redis and realtime) and routes."""
    app.cleanup_ctx.append(analytics_ctx)
    add_routes(app, ROUTES)


def _csv(summary: str) -> tuple[RawResponse, ...]:
    return (
        RawResponse(200, f"{summary} (UTF-8 with BOM)", "text/csv"),
        RawResponse(400, "A bad query", "application/json", Error),
        RawResponse(401, "No or a bad token", "application/json", Error),
        RawResponse(403, "Not a host token", "application/json", Error),
        RawResponse(503, "A backend is unavailable", "application/json", Error),
    )


ROOM_NOT_HOSTS = "the room is not the host's (404 `room_not_found`)"
FUNNEL_RULES = (
    "`steps` has fewer than 2 or more than 8 steps, or an unknown event type",
    "`room_id` is not one of the host's rooms",
    "`since` is not before `until`, the span is over 93 days, one is given empty or "
    "outside the years 2000..2200",
)
SPAN_RULES = (
    "`since` is not before `until`, the span is over 93 days, one is given empty or "
    "outside the years 2000..2200",
)

ROUTES = (
    route("POST", "/api/events", ingest_api.track, auth=ACTOR_KINDS, tag="analytics",
          rules=("a text or key anywhere in the batch contains a NUL character (the whole "
                 "batch is refused; other bad events are rejected one by one)",)),
    route("GET", "/api/host/rooms/{id}/analytics/pushes", reports_api.pushes, auth=HOST,
          tag="analytics", rules=SPAN_RULES),
    raw_route("GET", "/api/host/rooms/{id}/analytics/pushes.csv", reports_csv.pushes_csv,
              auth=HOST, query=reports_api.Span, tag="analytics", rules=SPAN_RULES,
              responses=(*_csv("The per-bubble funnels: one row per push, then one per "
                                "variant of a tested push"),
                         RawResponse(404, "No such room of the host", "application/json", Error))),
    route("GET", "/api/host/rooms/{id}/analytics/room", reports_api.room, auth=HOST,
          tag="analytics", rules=SPAN_RULES),
    raw_route("GET", "/api/host/rooms/{id}/analytics/room.csv", reports_csv.room_csv,
              auth=HOST, query=reports_api.Span, tag="analytics", rules=SPAN_RULES,
              responses=(*_csv("The room per minute, totals on every row"),
                         RawResponse(404, "No such room of the host", "application/json", Error))),
    route("GET", "/api/host/rooms/{id}/analytics/live", reports_api.live_figures, auth=HOST,
          tag="analytics"),
    route("POST", "/api/host/rooms/{id}/socket-token", live_api.socket_token, auth=HOST,
          status=201, tag="analytics"),
    route("GET", "/api/host/analytics/goods", reports_api.goods_daily, auth=HOST,
          tag="analytics", rules=SPAN_RULES),
    raw_route("GET", "/api/host/analytics/goods.csv", reports_csv.goods_csv, auth=HOST,
              query=reports_api.Span, tag="analytics", rules=SPAN_RULES,
              responses=_csv("The goods per day")),
    route("GET", "/api/host/analytics/funnel", reports_api.funnel, auth=HOST, tag="analytics",
          rules=FUNNEL_RULES),
    raw_route("GET", "/api/host/analytics/funnel.csv", reports_csv.funnel_csv, auth=HOST,
              query=reports_api.FunnelQuery, tag="analytics", rules=FUNNEL_RULES,
              responses=_csv("The funnel, one row per breakdown value")),
)  # fmt: skip
