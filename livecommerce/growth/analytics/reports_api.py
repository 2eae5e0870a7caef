"""HTTP: analytics reports for the room's host as JSON (typed), and the reports' queries, which
their CSV twins (:mod:`.reports_csv`) answer as one table.

Every report takes an optional ``since``/``until`` (RFC 3339; default: the last 7 days to now).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model, Query, to
from livecommerce.api.types import Id, Time, check_time
from livecommerce.errors import ValidationError
from livecommerce.growth.analytics import reports
from livecommerce.growth.analytics.live import LiveCounters

DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=93)
Rate = Annotated[float | None, Meta(description="num / den, 4 decimals; null when den is 0")]


class Span(Query):
    """The report's time range (default the last 7 days; at most 93 days)."""

    since: Annotated[Time | None, Meta(description="Start (inclusive)")] = None
    until: Annotated[Time | None, Meta(description="End (exclusive; default now)")] = None

    def __post_init__(self) -> None:
        if self.since is not None:
            self.since = check_time("since", self.since)
        if self.until is not None:
            self.until = check_time("until", self.until)

    def bounds(self, request: web.Request) -> tuple[datetime, datetime]:
        return _bounds(request, self.since, self.until)


def _bounds(
    request: web.Request, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """(start, end) of a report: default the last 7 days; 400 when empty or over 93 days."""
    for name in ("since", "until"):
        if request.query.get(name) == "":  # a time has no empty form (not "absent" here)
            raise ValidationError(name, "must be an RFC 3339 timestamp")
    end = until or datetime.now(UTC)
    start = since or end - DEFAULT_SPAN
    for name, value in (("until", end), ("since", start)):  # a default `since` follows `until`
        if not 2000 <= value.year <= 2200:  # windows are added to it: keep far from year 9999
            raise ValidationError(name, "must be between the years 2000 and 2200")
    if start >= end:
        raise ValidationError("since", "must be before `until`")
    if end - start > MAX_SPAN:
        raise ValidationError("since", "a report spans at most 93 days")
    return start, end


class FunnelQuery(Query):
    """A funnel: ordered steps, a conversion window, a scope and one breakdown."""

    steps: Annotated[
        str,
        Meta(
            min_length=3,
            max_length=600,
            pattern=r"^[a-z0-9_:]+(,[a-z0-9_:]+)+(?!\n)$",
            description="2..8 event types in order, comma-separated",
        ),
    ]
    window_seconds: Annotated[int, Meta(ge=1, le=30 * 86400)] = 86400
    room_id: Id | None = None
    breakdown: Literal["room", "goods", "variant"] | None = None
    experiment: (
        Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+(?!\n)$")]
        | None
    ) = None
    since: Annotated[Time | None, Meta(description="Start (inclusive)")] = None
    until: Annotated[Time | None, Meta(description="End (exclusive; default now)")] = None

    def __post_init__(self) -> None:
        if self.since is not None:
            self.since = check_time("since", self.since)
        if self.until is not None:
            self.until = check_time("until", self.until)
        # A variant is one experiment's: without its key every row would be `(none)`.
        if (self.breakdown == "variant") != (self.experiment is not None):
            raise ValidationError("experiment", "goes with `breakdown=variant` (both or neither)")

    def bounds(self, request: web.Request) -> tuple[datetime, datetime]:
        return _bounds(request, self.since, self.until)


class VariantFunnel(Model):
    """One variant's part of a tested push: the people whose bubble events report it."""

    variant: str
    viewers: Annotated[int | None, Meta(description="Always null (not known per variant)")]
    impressions: int
    clicks: int
    detail_views: int
    orders: int
    paid_orders: int
    gmv_fen: int
    impression_rate: Rate
    click_rate: Rate
    detail_rate: Rate
    order_rate: Rate
    pay_rate: Rate
    median_click_seconds: float | None
    median_order_seconds: float | None


class PushFunnel(Model):
    """One pushed bubble: viewers at push → impressions → clicks → detail views → orders → paid
    (people; orders by last-click attribution), with step rates, GMV and medians."""

    push_seq: Annotated[int, Meta(description="The bubble frame's seq")]
    goods_id: int | None
    pushed_at: datetime
    lateness_ms: Annotated[int | None, Meta(description="Scheduled pushes: fired − due")]
    viewers: Annotated[int, Meta(description="Viewers online at the push")]
    impressions: int
    clicks: int
    detail_views: int
    orders: int
    paid_orders: int
    gmv_fen: Annotated[int, Meta(description="Paid amount of the attributed orders (fen)")]
    impression_rate: Rate
    click_rate: Rate
    detail_rate: Rate
    order_rate: Rate
    pay_rate: Rate
    median_click_seconds: float | None
    median_order_seconds: float | None
    experiment: Annotated[
        str | None, Meta(description="The experiment key when the push A/B tested its creative")
    ] = None
    by_variant: Annotated[
        list[VariantFunnel] | None,
        Meta(description="With experiment: the funnel per variant (docs/experiments.md)"),
    ] = None


class PushReport(Model):
    room_id: int
    attribution_window_seconds: int
    pushes: list[PushFunnel]


class Minute(Model):
    minute: datetime
    viewers: int
    likes: int
    comments: int


class GoodsCtr(Model):
    goods_id: int
    impressions: int
    clicks: int
    click_rate: Rate


class RoomReport(Model):
    """A room over the span: curves per minute, GMV, GPM, paid buyers, top goods by CTR."""

    room_id: int
    minutes: list[Minute]
    peak_viewers: int
    orders: int
    paid_orders: int
    paid_buyers: int
    gmv_fen: int
    gpm_fen: Annotated[float | None, Meta(description="GMV per 1,000 peak viewers (fen)")]
    top_goods: list[GoodsCtr]


class GoodsDay(Model):
    goods_id: int
    day: date
    impressions: int
    clicks: int
    detail_views: int
    orders: int
    paid_orders: int
    gmv_fen: int
    click_rate: Rate
    conversion_rate: Rate


class GoodsReport(Model):
    days: list[GoodsDay]


class FunnelRow(Model):
    value: Annotated[str, Meta(description="The breakdown value (`all` without breakdown)")]
    counts: Annotated[list[int], Meta(description="People reaching each step")]
    rates: Annotated[list[float | None], Meta(description="Step k / step k−1")]


class FunnelReport(Model):
    steps: list[str]
    window_seconds: int
    breakdown: str | None
    rows: list[FunnelRow]


class LivePush(Model):
    push_seq: int
    impressions: int
    clicks: int
    detail_views: int
    orders: int
    goods_id: int | None = None
    pushed_at_ms: Annotated[int | None, Meta(description="When it was pushed (ms)")] = None
    lateness_ms: Annotated[int | None, Meta(description="Scheduled pushes: ms late")] = None
    schedule_id: int | None = None
    viewers: Annotated[int, Meta(description="Viewers online when it was pushed")] = 0


class LiveFigures(Model):
    """The room right now (Redis counters and room state; cheap to poll every second)."""

    room_id: int
    at: datetime
    viewers: int
    likes: int
    comments: int
    events: Annotated[dict[str, int], Meta(description="Events per type since the room began")]
    paid_buyers: int
    gmv_fen: int
    pushes: list[LivePush]


def window_of(settings: Any) -> timedelta:
    """The attribution window (``analytics.attribution_window_seconds``)."""
    return timedelta(seconds=settings.analytics.attribution_window_seconds)


def _window(call: Call[Any, Any]) -> timedelta:
    return window_of(call.app[keys.SETTINGS])


# -- the reports' queries (the JSON handlers below and the CSV ones of .reports_csv) -----------


async def push_rows(
    request: web.Request, host_id: int, room_id: int, span: Span
) -> list[dict[str, Any]]:
    """The room's per-bubble funnels over ``span`` (NotFound unless it is the host's room)."""
    start, end = span.bounds(request)
    window = window_of(request.app[keys.SETTINGS])
    async with request.app[keys.PG_POOL].acquire() as conn:
        await reports.host_room(conn, host_id, room_id)
        return await reports.push_funnels(conn, room_id, start, end, window)


async def room_data(request: web.Request, host_id: int, room_id: int, span: Span) -> dict[str, Any]:
    """The room's report over ``span`` (NotFound unless it is the host's room)."""
    start, end = span.bounds(request)
    window = window_of(request.app[keys.SETTINGS])
    async with request.app[keys.PG_POOL].acquire() as conn:
        await reports.host_room(conn, host_id, room_id)
        return await reports.room_report(conn, room_id, start, end, window)


async def goods_rows(request: web.Request, host_id: int, span: Span) -> list[dict[str, Any]]:
    """The host's goods per day over ``span``."""
    start, end = span.bounds(request)
    async with request.app[keys.PG_POOL].acquire() as conn:
        goods = await reports.host_goods(conn, host_id)
        return await reports.goods_daily(conn, goods, start, end)


async def funnel_rows(
    request: web.Request, host_id: int, q: FunnelQuery
) -> tuple[list[str], list[dict[str, Any]]]:
    """(steps, one row per breakdown value) of the funnel ``q`` asks for: scoped to its
    ``room_id`` (400 unless the host's; with the room-less events of its shelf's goods, as the
    server's order events) or else to the host's goods."""
    steps = q.steps.split(",")
    reports.check_steps(steps)
    start, end = q.bounds(request)
    async with request.app[keys.PG_POOL].acquire() as conn:
        if q.room_id is not None:
            await _own_room_or_400(conn, host_id, q.room_id)
            goods = [
                r["goods_id"]
                for r in await conn.fetch(
                    "SELECT goods_id FROM room_goods WHERE room_id = $1", q.room_id
                )
            ]
        else:
            goods = await reports.host_goods(conn, host_id)
        rows = await reports.funnel(
            conn,
            steps,
            start=start,
            end=end,
            window=timedelta(seconds=q.window_seconds),
            room_id=q.room_id,
            goods=goods,
            breakdown=q.breakdown,
            experiment=q.experiment,
        )
    return steps, rows


# -- JSON --------------------------------------------------------------------------------------


async def pushes(call: Call[None, Span]) -> PushReport:
    """Per pushed bubble funnels of a room (JSON; `.csv` for the same as CSV).

    An order is attributed to the last bubble of its goods the buyer clicked within
    `analytics.attribution_window_seconds` before ordering."""
    room_id = call.id()
    rows = await push_rows(call.request, call.host_id, room_id, call.query)
    return PushReport(
        room_id=room_id,
        attribution_window_seconds=int(_window(call).total_seconds()),
        pushes=to(list[PushFunnel], rows),
    )


async def room(call: Call[None, Span]) -> RoomReport:
    """A room's report: viewer curve, likes/comments per minute, GMV, GPM, buyers, top goods."""
    return to(RoomReport, await room_data(call.request, call.host_id, call.id(), call.query))


async def goods_daily(call: Call[None, Span]) -> GoodsReport:
    """The host's goods per day: impressions, clicks, detail views, orders, CTR, conversion."""
    rows = await goods_rows(call.request, call.host_id, call.query)
    return GoodsReport(days=to(list[GoodsDay], rows))


async def funnel(call: Call[None, FunnelQuery]) -> FunnelReport:
    """A funnel of people through ordered event steps within a window, by one breakdown.

    Scoped to `room_id` (the host's) or else to the host's goods."""
    q = call.query
    steps, rows = await funnel_rows(call.request, call.host_id, q)
    return FunnelReport(
        steps=steps,
        window_seconds=q.window_seconds,
        breakdown=q.breakdown,
        rows=to(list[FunnelRow], rows),
    )


async def _own_room_or_400(conn: Any, host_id: int, room_id: int) -> None:
    owner = await conn.fetchval("SELECT host_id FROM live_rooms WHERE id = $1", room_id)
    if owner != host_id:
        raise ValidationError("room_id", "not one of your rooms")


async def live_figures(call: Call[None, None]) -> LiveFigures:
    """The room's live figures (recomputed on every call from incremental counters).

    Viewers and likes come from the room's state, the rest from counters the event writer
    bumps per flush: poll it every second for the console's live panel."""
    room_id = call.id()
    async with call.app[keys.PG_POOL].acquire() as conn:
        await reports.host_room(conn, call.host_id, room_id)
    counters: LiveCounters = call.app[keys.ANALYTICS_LIVE]
    figures = await counters.read(room_id)
    cfg = call.app[keys.SETTINGS].analytics
    paid = await _cached_orders(call, room_id, cfg.live_interval_seconds)
    return to(LiveFigures, {"room_id": room_id, "at": datetime.now(UTC), **figures, **paid})


async def _cached_orders(call: Call[Any, Any], room_id: int, ttl: float) -> dict[str, int]:
    """Paid buyers and GMV of the orders attributed to the room's bubbles since it started
    (one indexed query, at most once per ``ttl`` seconds per room on this node)."""
    cache = call.app[keys.ANALYTICS_LIVE].orders_cache
    now = time.monotonic()
    hit = cache.get(room_id)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    window = _window(call)
    async with call.app[keys.PG_POOL].acquire() as conn:
        room_row = await conn.fetchrow(
            "SELECT started_at, created_at FROM live_rooms WHERE id = $1", room_id
        )
        goods = [
            r["goods_id"]
            for r in await conn.fetch("SELECT goods_id FROM room_goods WHERE room_id = $1", room_id)
        ]
        start = (room_row["started_at"] or room_row["created_at"]) if room_row else None
        orders = (
            await reports.attributed_orders(
                conn, goods, start, datetime.now(UTC) + timedelta(seconds=1), window
            )
            if start is not None and goods
            else []
        )
    paid = [o for o in orders if o["room_id"] == room_id and o["paid_at"] is not None]
    out = {
        "paid_buyers": len({o["user_id"] for o in paid}),
        "gmv_fen": sum(o["paid_fen"] or 0 for o in paid),
    }
    if len(cache) > 10_000:
        cache.clear()
    cache[room_id] = (now, out)
    return out
