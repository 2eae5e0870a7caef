"""Prometheus metrics, one registry per app (so several apps can live in one test process)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "livecommerce_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "livecommerce_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.open_sockets = Gauge(
            "livecommerce_websockets_open", "Open WebSocket connections on this node", registry=r
        )
        self.viewers = Gauge(
            "livecommerce_room_viewers", "Viewers connected to rooms on this node", registry=r
        )
        self.fanout = Counter(
            "livecommerce_room_frames_fanned_out",
            "Room frames written to local viewers",
            registry=r,
        )
        self.evictions = Counter(
            "livecommerce_room_evictions", "Viewers evicted for a full send buffer", registry=r
        )
        self.resumes = Counter(
            "livecommerce_room_resumes",
            "Resume attempts by outcome (hit, miss)",
            ["outcome"],
            registry=r,
        )
        self.gap_fills = Counter(
            "livecommerce_room_gap_fills",
            "Frames recovered from history after a subscription gap",
            registry=r,
        )
        self.resyncs = Counter(
            "livecommerce_room_resyncs",
            "Connected viewers sent an in-band resync (room stream reset or history gap)",
            registry=r,
        )
        self.subscriptions = Counter(
            "livecommerce_room_subscriptions",
            "Times this node's room subscription was (re)established",
            registry=r,
        )
        self.timer_reconciled = Counter(
            "livecommerce_timer_reconciled",
            "Pending pushes put back on the wheel from PostgreSQL (missing from Redis)",
            registry=r,
        )
        self.timer_lateness = Histogram(
            "livecommerce_timer_lateness_seconds",
            "Scheduled push lateness: frame published (Redis time) minus due time",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300),
            registry=r,
        )
        self.timer_pushes = Counter(
            "livecommerce_timer_pushes",
            "Scheduled pushes by outcome (fired, skipped)",
            ["outcome"],
            registry=r,
        )
        self.pool_size = Gauge(
            "livecommerce_db_pool_size", "PostgreSQL pool connections", registry=r
        )
        self.pool_in_use = Gauge(
            "livecommerce_db_pool_in_use", "PostgreSQL pool connections in use", registry=r
        )


def route_label(request: web.Request) -> str:
    """The route's template (bounded cardinality), never the raw path."""
    info = request.match_info
    resource = info.route.resource if info is not None and info.route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = route_label(request)
            metrics.http_requests.labels(request.method, route, str(status)).inc()
            metrics.http_latency.labels(request.method, route).observe(time.perf_counter() - start)

    return middleware
