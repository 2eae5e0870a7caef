"""HTTP routes for live rooms (host actions need a host token scoped to the host's rooms)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from livecommerce import inputs, keys
from livecommerce.auth.http import require_claims
from livecommerce.auth.tokens import anonymous_subject, issue_token
from livecommerce.errors import NotFound, ValidationError
from livecommerce.httpio import json_response
from livecommerce.rooms import service
from livecommerce.timer import service as timer_service


def _host_id(request: web.Request) -> int:
    host_id = require_claims(request, "host").host_id
    assert host_id is not None
    return host_id


def _datetime(body: dict[str, object], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(name, "must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(name, "must be an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValidationError(name, "must include a time zone offset")
    return parsed


async def create_room(request: web.Request) -> web.Response:
    host_id = _host_id(request)
    body = await inputs.json_object(
        request, ("title", "cover_url", "stream_url", "planned_start_at")
    )
    async with request.app[keys.PG_POOL].acquire() as conn:
        room = await service.create_room(
            conn,
            host_id,
            title=inputs.required_text(body, "title", max_len=200),
            cover_url=inputs.text(body, "cover_url", max_len=1000, default="") or "",
            stream_url=inputs.text(body, "stream_url", max_len=1000, default="") or "",
            planned_start_at=_datetime(body, "planned_start_at"),
        )
    return json_response(room, status=201)


async def get_room(request: web.Request) -> web.Response:
    room_id = inputs.path_id(request, "room_id")
    pool = request.app[keys.PG_POOL]
    room = await service.get_room(pool, room_id)
    if room is None:
        raise NotFound("no such room", code="room_not_found")
    room["goods"] = await service.room_goods(pool, room_id)
    return json_response(room)


async def start_room(request: web.Request) -> web.Response:
    host_id = _host_id(request)
    room_id = inputs.path_id(request, "room_id")
    app = request.app
    room = await service.set_state(app[keys.PG_POOL], app[keys.BROKER], host_id, room_id, "live")
    # Offsets ("+35:00 from start") become absolute times now.
    await timer_service.resolve_offsets(app[keys.PG_POOL], app[keys.WHEEL], room_id)
    return json_response(room)


async def end_room(request: web.Request) -> web.Response:
    host_id = _host_id(request)
    room_id = inputs.path_id(request, "room_id")
    app = request.app
    return json_response(
        await service.set_state(app[keys.PG_POOL], app[keys.BROKER], host_id, room_id, "ended")
    )


async def attach_goods(request: web.Request) -> web.Response:
    host_id = _host_id(request)
    room_id = inputs.path_id(request, "room_id")
    body = await inputs.json_object(request, ("goods_ids",))
    ids = inputs.id_list(body, "goods_ids", max_items=200)
    if not ids:
        raise ValidationError("goods_ids", "must be a list of 1..200 goods ids")
    async with request.app[keys.PG_POOL].acquire() as conn:
        goods = await service.attach_goods(conn, host_id, room_id, ids)
    return json_response({"goods": goods})


async def push_goods(request: web.Request) -> web.Response:
    host_id = _host_id(request)
    room_id = inputs.path_id(request, "room_id")
    body = await inputs.json_object(request, ("goods_id", "show_seconds", "idempotency_key"))
    app = request.app
    default_show = app[keys.SETTINGS].rooms.bubble_default_seconds
    goods_id = inputs.required_int(body, "goods_id", low=1, high=inputs.MAX_ID)
    show = inputs.integer(body, "show_seconds", low=1, high=3600, default=default_show)
    key = inputs.text(body, "idempotency_key", max_len=100, min_len=1)
    assert show is not None
    published = await service.push_goods(
        app[keys.PG_POOL],
        app[keys.BROKER],
        host_id,
        room_id,
        goods_id,
        show_seconds=show,
        idempotency_key=key,
    )
    return json_response(
        {"seq": published.seq, "duplicate": not published.fresh},
        status=201 if published.fresh else 200,
    )


async def withdraw_goods(request: web.Request) -> web.Response:
    host_id = _host_id(request)
    room_id = inputs.path_id(request, "room_id")
    app = request.app
    published = await service.withdraw_goods(app[keys.PG_POOL], app[keys.BROKER], host_id, room_id)
    return json_response({"seq": published.seq})


async def viewer_token(request: web.Request) -> web.Response:
    """An anonymous viewer token for browsing and watching (no login)."""
    security = request.app[keys.SETTINGS].security
    token = issue_token(
        request.app[keys.SETTINGS].secret, "viewer", anonymous_subject(), security.token_ttl_seconds
    )
    return json_response(
        {"token": token, "kind": "viewer", "expires_in": security.token_ttl_seconds}, status=201
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/tokens/viewer", viewer_token)
    r.add_post("/api/rooms", create_room)
    r.add_get("/api/rooms/{room_id}", get_room)
    r.add_post("/api/rooms/{room_id}/start", start_room)
    r.add_post("/api/rooms/{room_id}/end", end_room)
    r.add_post("/api/rooms/{room_id}/goods", attach_goods)
    r.add_post("/api/rooms/{room_id}/push", push_goods)
    r.add_post("/api/rooms/{room_id}/withdraw", withdraw_goods)
