"""Host endpoints for scheduled pushes, and the dispatcher's cleanup context."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web

from livecommerce import inputs, keys
from livecommerce.aio import running
from livecommerce.auth.http import require_claims
from livecommerce.errors import ValidationError
from livecommerce.httpio import json_response
from livecommerce.timer import service
from livecommerce.timer.dispatcher import Dispatcher
from livecommerce.timer.wheel import Wheel

log = logging.getLogger("livecommerce.timer")
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
MAX_OFFSET_SECONDS = 7 * 24 * 3600


def _host(request: web.Request) -> int:
    host_id = require_claims(request, "host").host_id
    assert host_id is not None
    return host_id


def _when(body: dict[str, Any]) -> tuple[datetime | None, int | None]:
    """Exactly one of ``at`` (ISO 8601 with offset) or ``offset_seconds`` (from actual start)."""
    at_raw, offset_raw = body.get("at"), body.get("offset_seconds")
    if (at_raw is None) == (offset_raw is None):
        raise ValidationError("at", "give exactly one of at or offset_seconds")
    if at_raw is not None:
        if not isinstance(at_raw, str):
            raise ValidationError("at", "must be an ISO 8601 timestamp string")
        try:
            at = datetime.fromisoformat(at_raw)
        except ValueError:
            raise ValidationError("at", "must be an ISO 8601 timestamp") from None
        if at.tzinfo is None:
            raise ValidationError("at", "must include a time zone offset")
        return at, None
    if isinstance(offset_raw, bool) or not isinstance(offset_raw, (int, float)):
        raise ValidationError("offset_seconds", "must be a number")
    if not 0 <= offset_raw <= MAX_OFFSET_SECONDS:
        raise ValidationError("offset_seconds", f"must be between 0 and {MAX_OFFSET_SECONDS}")
    return None, round(offset_raw * 1000)


async def create(request: web.Request) -> web.Response:
    host_id = _host(request)
    room_id = inputs.path_id(request, "room_id")
    body = await inputs.json_object(
        request, ("goods_id", "show_seconds", "at", "offset_seconds", "idempotency_key")
    )
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValidationError("idempotency_key", "is required: 1..100 of A-Z a-z 0-9 . _ : -")
    goods_id = inputs.required_int(body, "goods_id", low=1, high=inputs.MAX_ID)
    default_show = request.app[keys.SETTINGS].rooms.bubble_default_seconds
    show = inputs.integer(body, "show_seconds", low=1, high=3600, default=default_show)
    at, offset_ms = _when(body)
    assert show is not None
    app = request.app
    row = await service.create(
        app[keys.PG_POOL], app[keys.WHEEL], host_id, room_id,
        goods_id=goods_id, show_seconds=show, at=at, offset_ms=offset_ms, idempotency_key=key,
    )  # fmt: skip
    return json_response(row, status=201)


async def list_schedules(request: web.Request) -> web.Response:
    host_id = _host(request)
    room_id = inputs.path_id(request, "room_id")
    rows = await service.list_for_room(request.app[keys.PG_POOL], host_id, room_id)
    return json_response({"schedules": rows})


async def reschedule(request: web.Request) -> web.Response:
    host_id = _host(request)
    room_id = inputs.path_id(request, "room_id")
    schedule_id = inputs.path_id(request, "schedule_id")
    at, offset_ms = _when(await inputs.json_object(request, ("at", "offset_seconds")))
    app = request.app
    row = await service.reschedule(
        app[keys.PG_POOL],
        app[keys.WHEEL],
        host_id,
        room_id,
        schedule_id,
        at=at,
        offset_ms=offset_ms,
    )
    return json_response(row)


async def cancel(request: web.Request) -> web.Response:
    host_id = _host(request)
    room_id = inputs.path_id(request, "room_id")
    schedule_id = inputs.path_id(request, "schedule_id")
    app = request.app
    return json_response(
        await service.cancel(app[keys.PG_POOL], app[keys.WHEEL], host_id, room_id, schedule_id)
    )


async def correct_start(request: web.Request) -> web.Response:
    host_id = _host(request)
    room_id = inputs.path_id(request, "room_id")
    body = await inputs.json_object(request, ("started_at",))
    raw = body.get("started_at")
    try:
        started_at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        started_at = None
    if started_at is None or started_at.tzinfo is None:
        raise ValidationError("started_at", "must be an ISO 8601 timestamp with a time zone offset")
    app = request.app
    return json_response(
        await service.correct_start(
            app[keys.PG_POOL], app[keys.WHEEL], host_id, room_id, started_at
        )
    )


async def timer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    cfg = settings.timer
    wheel = Wheel(
        app[keys.REDIS],
        lease_ms=int(cfg.lease_seconds * 1000),
        batch=cfg.claim_batch,
        lookahead_ms=cfg.lookahead_ms,
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
    app.cleanup_ctx.append(timer_ctx)
    r = app.router
    r.add_post("/api/rooms/{room_id}/schedules", create)
    r.add_get("/api/rooms/{room_id}/schedules", list_schedules)
    r.add_patch("/api/rooms/{room_id}/schedules/{schedule_id}", reschedule)
    r.add_delete("/api/rooms/{room_id}/schedules/{schedule_id}", cancel)
    r.add_put("/api/rooms/{room_id}/started_at", correct_start)
