"""HTTP: a host's scheduled goods pushes, and the dispatcher's cleanup context.

A schedule fires at an absolute time (``at``) or at an offset from the room's actual start
(``offset_seconds``; resolved when the room goes live, re-resolved if the start is corrected).
Each handler's body/response models sit next to it; ``ROUTES`` is added by :func:`setup`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from msgspec import Meta

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.api.contract import HOST, Body, Call, Model, Reply, add_routes, route, to
from livecommerce.api.types import MAX_AHEAD_DAYS, Id, ShowSeconds, Time, check_ahead, check_time
from livecommerce.errors import ValidationError
from livecommerce.growth.experiments import bubble_push
from livecommerce.timer import service
from livecommerce.timer.dispatcher import Dispatcher
from livecommerce.timer.wheel import Wheel

log = logging.getLogger("livecommerce.timer")
MAX_OFFSET_SECONDS = 7 * 24 * 3600

ScheduleKey = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9._:-]{1,100}(?!\n)$",
        description="1-100 of A-Z a-z 0-9 . _ : - ; unique per room (a replay is a 409)",
    ),
]
At = Annotated[
    Time,
    Meta(
        description="The due time, with a zone offset (or offset_seconds); in the future, at most "
        f"{MAX_AHEAD_DAYS} days ahead"
    ),
]
OffsetSeconds = Annotated[
    float,
    Meta(ge=0, le=MAX_OFFSET_SECONDS, description="Seconds after the room's actual start (or at)"),
]
ScheduleStatus = Literal["pending", "fired", "cancelled", "skipped"]


class ScheduleCreate(Body):
    """A goods push at ``at`` or ``offset_seconds`` after the actual start (exactly one)."""

    goods_id: Id
    idempotency_key: ScheduleKey
    show_seconds: Annotated[
        ShowSeconds | None, Meta(description="Default: rooms.bubble_default_seconds")
    ] = None
    at: At | None = None
    offset_seconds: OffsetSeconds | None = None
    experiment_id: Annotated[
        Id | None, Meta(description="A draft or running experiment of the host")
    ] = None
    variants: bubble_push.Variants | None = None

    def __post_init__(self) -> None:
        if self.at is not None:
            check_ahead("at", check_time("at", self.at))
        bubble_push.check_pair(self.experiment_id, self.variants)


class ScheduleMove(Body):
    """The new time: exactly one of ``at`` or ``offset_seconds``."""

    at: At | None = None
    offset_seconds: OffsetSeconds | None = None

    def __post_init__(self) -> None:
        if self.at is not None:
            check_ahead("at", check_time("at", self.at))


class Schedule(Model):
    """A scheduled push and its outcome."""

    id: int
    room_id: int
    goods_id: int
    show_seconds: int
    due_at: Annotated[datetime | None, Meta(description="Null while an offset awaits the start")]
    offset_seconds: float | None
    idempotency_key: str
    status: ScheduleStatus
    version: Annotated[int, Meta(description="Bumped by every reschedule")]
    fired_at: datetime | None
    lateness_ms: int | None
    late: bool
    publish_seq: int | None
    skip_reason: Annotated[
        str | None,
        Meta(description="too_late, room_not_live, room_ended or goods_gone when skipped"),
    ]
    experiment_id: int | None = None
    creatives: Annotated[
        list[dict[str, Any]] | None,
        Meta(description="One creative per variant, in the experiment's variant order"),
    ] = None


class ScheduleList(Model):
    schedules: list[Schedule]


class StartCorrection(Body):
    started_at: Time

    def __post_init__(self) -> None:
        check_time("started_at", self.started_at)


class StartCorrected(Model):
    room_id: int
    started_at: datetime
    rescheduled: Annotated[int, Meta(description="How many offset schedules moved")]


def _when(at: datetime | None, offset_seconds: float | None) -> tuple[datetime | None, int | None]:
    """(at, offset in ms): exactly one of them is given.

    Raises:
        ValidationError: on ``at`` when both or neither are given.
    """
    if (at is None) == (offset_seconds is None):
        raise ValidationError("at", "give exactly one of at or offset_seconds")
    return at, None if offset_seconds is None else round(offset_seconds * 1000)


async def create(call: Call[ScheduleCreate, None]) -> Reply[Schedule]:
    """Schedule a goods push at a time or an offset from the actual start.

    400 on ``at``/``offset_seconds`` when the time is past (or the room has no start to offset
    from), 404 ``goods_not_in_room``, 409 ``duplicate_schedule`` (key reused) or ``room_ended``.
    With ``experiment_id`` and ``variants`` the push A/B tests its creative: 400 on
    ``experiment_id`` (no such experiment of this host) or ``variants`` (not one creative per
    variant), 409 ``experiment_not_running`` (stopped). When it fires, an experiment that is
    not running then pushes the control creative alone.
    """
    b, app = call.body, call.app
    at, offset_ms = _when(b.at, b.offset_seconds)
    show = b.show_seconds
    if show is None:
        show = app[keys.SETTINGS].rooms.bubble_default_seconds
    row = await service.create(
        app[keys.PG_POOL], app[keys.WHEEL], call.host_id, call.id("room_id"),
        goods_id=b.goods_id, show_seconds=show, at=at, offset_ms=offset_ms,
        idempotency_key=b.idempotency_key, experiment_id=b.experiment_id,
        creatives=bubble_push.creatives_of(b.variants) if b.variants else None,
    )  # fmt: skip
    return Reply(to(Schedule, row), status=201)


async def list_schedules(call: Call[None, None]) -> ScheduleList:
    """The room's scheduled pushes, by due time."""
    rows = await service.list_for_room(call.app[keys.PG_POOL], call.host_id, call.id("room_id"))
    return to(ScheduleList, {"schedules": rows})


async def reschedule(call: Call[ScheduleMove, None]) -> Schedule:
    """Move a pending schedule (the old time never fires).

    409 when it is no longer pending (fired, cancelled, skipped) or the room has ended.
    """
    app = call.app
    at, offset_ms = _when(call.body.at, call.body.offset_seconds)
    row = await service.reschedule(
        app[keys.PG_POOL], app[keys.WHEEL], call.host_id, call.id("room_id"),
        call.id("schedule_id"), at=at, offset_ms=offset_ms,
    )  # fmt: skip
    return to(Schedule, row)


async def cancel(call: Call[None, None]) -> Schedule:
    """Cancel a pending schedule (409 ``already_fired``/``already_cancelled`` otherwise)."""
    app = call.app
    row = await service.cancel(
        app[keys.PG_POOL], app[keys.WHEEL], call.host_id, call.id("room_id"),
        call.id("schedule_id"),
    )  # fmt: skip
    return to(Schedule, row)


async def correct_start(call: Call[StartCorrection, None]) -> StartCorrected:
    """Correct a live room's actual start time; its offset schedules follow.

    400 on ``started_at`` in the future, 409 ``room_not_live``.
    """
    app = call.app
    result = await service.correct_start(
        app[keys.PG_POOL], app[keys.WHEEL], call.host_id, call.id("room_id"),
        call.body.started_at,
    )  # fmt: skip
    return to(StartCorrected, result)


ROUTES = (
    route("POST", "/api/rooms/{room_id}/schedules", create, auth=HOST, status=201,
          errors=(409,),
          rules=(
              "not exactly one of `at` and `offset_seconds` is given",
              f"the due time is in the past, more than {MAX_AHEAD_DAYS} days ahead, or out of "
              "range once converted to UTC",
              "`offset_seconds` is given but the room has not started",
              "`experiment_id` names no experiment of this host",
              "`variants` does not give exactly one creative per variant of the experiment",
          )),
    route("GET", "/api/rooms/{room_id}/schedules", list_schedules, auth=HOST),
    route("PATCH", "/api/rooms/{room_id}/schedules/{schedule_id}", reschedule, auth=HOST,
          errors=(409,),
          rules=(
              "not exactly one of `at` and `offset_seconds` is given",
              f"the due time is in the past, more than {MAX_AHEAD_DAYS} days ahead, or out of "
              "range once converted to UTC",
              "`offset_seconds` is given but the room has not started",
          )),
    route("DELETE", "/api/rooms/{room_id}/schedules/{schedule_id}", cancel, auth=HOST,
          errors=(409,)),
    route("PUT", "/api/rooms/{room_id}/started_at", correct_start, auth=HOST, errors=(409,),
          rules=(
              "`started_at` is in the future or out of range once converted to UTC",
          )),
)  # fmt: skip


async def timer_ctx(app: web.Application) -> AsyncIterator[None]:
    """The wheel and its dispatcher (not started when ``timer.enabled`` is false)."""
    settings = app[keys.SETTINGS]
    cfg = settings.timer
    wheel = Wheel(
        app[keys.REDIS],
        lease_ms=int(cfg.lease_seconds * 1000),
        batch=cfg.claim_batch,
        lookahead_ms=cfg.lookahead_ms,
        shards=cfg.wheel_shards,
    )
    app[keys.WHEEL] = wheel
    dispatcher = Dispatcher(
        app[keys.PG_POOL], app[keys.REDIS], wheel, app[keys.BROKER], cfg, app[keys.METRICS]
    )
    app[keys.DISPATCHER] = dispatcher
    if not cfg.enabled:
        yield
        return
    async with running(dispatcher.run(), "timer-dispatcher"):
        yield


def setup(app: web.Application) -> None:
    """The timer's cleanup context and routes (called once from ``create_app``)."""
    app.cleanup_ctx.append(timer_ctx)
    add_routes(app, ROUTES)
