"""HTTP: live rooms and viewer tokens (host actions need a host token, scoped to its rooms).

Each handler's body/response models sit next to it; ``ROUTES`` is the table added by
:func:`add_routes`. Another host's room answers exactly like a missing one (404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta

from livecommerce import keys
from livecommerce.api import contract
from livecommerce.api.contract import HOST, Body, Call, Model, Reply, route, to
from livecommerce.api.types import (
    HTTP_URL,
    MAX_AHEAD_DAYS,
    NO_NUL,
    STREAM_URL,
    Id,
    NonBlankTitle,
    ShowSeconds,
    Time,
    check_ahead,
    check_behind,
    check_time,
)
from livecommerce.auth.tokens import anonymous_subject, issue_token
from livecommerce.errors import NotFound
from livecommerce.growth.experiments import bubble_push
from livecommerce.rooms import service
from livecommerce.timer import service as timer_service

RoomState = Literal["scheduled", "live", "ended"]
CoverUrl = Annotated[
    str, Meta(max_length=1000, pattern=HTTP_URL, description="An http(s) URL of an image")
]
StreamUrl = Annotated[
    str,
    Meta(
        max_length=1000,
        pattern=STREAM_URL,
        description="The live stream, as WeChat's <live-player> plays it: rtmp:// or http(s):// "
        "(HTTP-FLV)",
    ),
]
# A planned start may lie a little in the past (a room made for a show already under way, a
# browser clock a little ahead) but not further, nor more than MAX_AHEAD_DAYS ahead: year 1,
# 1970 or 9999 is a typo, not a plan (checked against the server's clock at creation).
PLANNED_START_PAST_DAYS = 1
PlannedStart = Annotated[
    Time,
    Meta(
        description=f"When the live is planned to start: at most {PLANNED_START_PAST_DAYS} day in "
        f"the past and at most {MAX_AHEAD_DAYS} days ahead; omit (or null) for none"
    ),
]
PushKey = Annotated[
    str,
    Meta(min_length=1, max_length=100, description="A replay with the same key publishes once"),
    NO_NUL,
]

# -- viewer tokens ----------------------------------------------------------------------------


class ViewerToken(Model):
    token: str
    kind: Literal["viewer"]
    expires_in: Annotated[int, Meta(description="Seconds until the token expires")]


async def viewer_token(call: Call[None, None]) -> Reply[ViewerToken]:
    """An anonymous viewer token for browsing and watching (no login).

    Any request body is ignored.
    """
    settings = call.app[keys.SETTINGS]
    ttl = settings.security.token_ttl_seconds
    token = issue_token(settings.secret, "viewer", anonymous_subject(), ttl)
    return Reply(ViewerToken(token=token, kind="viewer", expires_in=ttl), status=201)


# -- rooms ------------------------------------------------------------------------------------


class RoomCreate(Body):
    """A new room of the calling host (state ``scheduled``)."""

    title: Annotated[NonBlankTitle, Meta(description="Not blank")]
    cover_url: Annotated[CoverUrl | None, Meta(description="Omit (or null) for none")] = None
    stream_url: Annotated[StreamUrl | None, Meta(description="Omit (or null) for none")] = None
    planned_start_at: PlannedStart | None = None

    def __post_init__(self) -> None:
        if self.planned_start_at is not None:
            when = check_time("planned_start_at", self.planned_start_at)
            check_behind("planned_start_at", when, PLANNED_START_PAST_DAYS)
            check_ahead("planned_start_at", when)


class Room(Model):
    """A room as viewers see it (also the ``room`` of the WebSocket ``welcome``)."""

    id: int
    host_id: int
    title: str
    cover_url: str
    stream_url: str
    state: RoomState
    planned_start_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None


class RoomGoods(Model):
    """A goods item shown in a room, in the room's order."""

    id: int
    title: str
    price_fen: Annotated[int, Meta(description="Price in fen (1/100 CNY)")]
    stock: int
    image: Annotated[str, Meta(description="The first image's URL, or empty")]
    category: str
    status: Annotated[
        Literal["draft", "on_sale", "off_sale"],
        Meta(description="Never draft in the public room; the host's attach answer shows drafts"),
    ]


class RoomDetail(Room):
    """A room with its goods."""

    goods: list[RoomGoods]


async def create_room(call: Call[RoomCreate, None]) -> Reply[Room]:
    """A host creates a live room."""
    b = call.body
    async with call.app[keys.PG_POOL].acquire() as conn:
        room = await service.create_room(
            conn, call.host_id, title=b.title, cover_url=b.cover_url or "",
            stream_url=b.stream_url or "", planned_start_at=b.planned_start_at,
        )  # fmt: skip
    return Reply(to(Room, room), status=201)


async def get_room(call: Call[None, None]) -> RoomDetail:
    """A room with its goods (public)."""
    pool = call.app[keys.PG_POOL]
    room_id = call.id("room_id")
    room = await service.get_room(pool, room_id)
    if room is None:
        raise NotFound("no such room", code="room_not_found")
    room["goods"] = await service.room_goods(pool, room_id)
    return to(RoomDetail, room)


async def start_room(call: Call[None, None]) -> Room:
    """Go live (repeating it is a no-op).

    Schedules given as an offset from the actual start get their due times now. 409
    ``illegal_transition`` for an ended room.
    """
    app, room_id = call.app, call.id("room_id")
    room = await service.set_state(
        app[keys.PG_POOL], app[keys.BROKER], call.host_id, room_id, "live"
    )
    await timer_service.resolve_offsets(app[keys.PG_POOL], app[keys.WHEEL], room_id)
    return to(Room, room)


async def end_room(call: Call[None, None]) -> Room:
    """End the live (repeating it is a no-op); viewers get ``room_state`` and close 4410."""
    app = call.app
    room = await service.set_state(
        app[keys.PG_POOL], app[keys.BROKER], call.host_id, call.id("room_id"), "ended"
    )
    return to(Room, room)


# -- goods in a room --------------------------------------------------------------------------


class RoomGoodsAttach(Body):
    """Goods to add to the room (appended in this order; already attached ones stay put)."""

    goods_ids: Annotated[list[Id], Meta(min_length=1, max_length=200)]


class RoomGoodsList(Model):
    goods: list[RoomGoods]


class GoodsPush(Body):
    """A goods bubble to show now; with ``experiment_id`` and ``variants``, an A/B test of its
    creative (each viewer is shown the creative of its variant)."""

    goods_id: Id
    show_seconds: Annotated[
        ShowSeconds | None, Meta(description="Default: rooms.bubble_default_seconds")
    ] = None
    idempotency_key: PushKey | None = None
    experiment_id: Annotated[Id | None, Meta(description="A running experiment of the host")] = None
    variants: bubble_push.Variants | None = None

    def __post_init__(self) -> None:
        bubble_push.check_pair(self.experiment_id, self.variants)


class GoodsPushed(Model):
    seq: Annotated[int, Meta(description="The room sequence number of the goods_push frame")]
    duplicate: Annotated[bool, Meta(description="True when the key had published before")]


class GoodsWithdrawn(Model):
    seq: Annotated[int, Meta(description="The room sequence number of the goods_withdraw frame")]


async def attach_goods(call: Call[RoomGoodsAttach, None]) -> RoomGoodsList:
    """Attach the host's own goods to the host's room; answers all the room's goods.

    An id naming no goods of this host (missing or another host's) is a 400 on ``goods_ids``.
    Drafts may be attached to prepare a show: they are in this answer (the host's view) but not
    in the public room (``GET /api/rooms/{room_id}``), and cannot be pushed until on sale.
    """
    ids = sorted(set(call.body.goods_ids))
    async with call.app[keys.PG_POOL].acquire() as conn:
        goods = await service.attach_goods(conn, call.host_id, call.id("room_id"), ids)
    return to(RoomGoodsList, {"goods": goods})


async def push_goods(call: Call[GoodsPush, None]) -> Reply[GoodsPushed]:
    """Show a goods bubble in the live room now.

    201 when published; 200 with the first ``seq`` and ``duplicate: true`` when the
    ``idempotency_key`` had published before (the same goods and show time). 404
    ``goods_not_in_room``; 409 ``room_not_live`` (scheduled), ``room_ended``, ``not_on_sale``
    (a draft or off-sale goods) or ``idempotency_key_reused`` (the key was used for another
    push), ``experiment_not_running``;
    400 on ``experiment_id`` (no such experiment of this host) or ``variants`` (not exactly one
    creative per variant of the experiment).
    """
    app, b = call.app, call.body
    show = b.show_seconds
    if show is None:
        show = app[keys.SETTINGS].rooms.bubble_default_seconds
    published = await service.push_goods(
        app[keys.PG_POOL], app[keys.BROKER], call.host_id, call.id("room_id"), b.goods_id,
        show_seconds=show, idempotency_key=b.idempotency_key, experiment_id=b.experiment_id,
        creatives=bubble_push.creatives_of(b.variants) if b.variants else None,
    )  # fmt: skip
    return Reply(
        GoodsPushed(seq=published.seq, duplicate=not published.fresh),
        status=201 if published.fresh else 200,
    )


async def withdraw_goods(call: Call[None, None]) -> GoodsWithdrawn:
    """Hide the current bubble (withdrawing nothing still publishes). 409 ``room_ended``."""
    app = call.app
    published = await service.withdraw_goods(
        app[keys.PG_POOL], app[keys.BROKER], call.host_id, call.id("room_id")
    )
    return GoodsWithdrawn(seq=published.seq)


ROUTES = (
    route("POST", "/api/tokens/viewer", viewer_token, status=201, tag="auth"),
    route("POST", "/api/rooms", create_room, auth=HOST, status=201,
          rules=(
              "`planned_start_at` is out of range once converted to UTC",
              f"`planned_start_at` is more than {PLANNED_START_PAST_DAYS} day in the past or "
              f"more than {MAX_AHEAD_DAYS} days ahead",
          )),
    route("GET", "/api/rooms/{room_id}", get_room),
    route("POST", "/api/rooms/{room_id}/start", start_room, auth=HOST, errors=(409,)),
    route("POST", "/api/rooms/{room_id}/end", end_room, auth=HOST, errors=(409,)),
    route("POST", "/api/rooms/{room_id}/goods", attach_goods, auth=HOST,
          rules=(
              "a goods id does not exist or is another host's",
          )),
    route("POST", "/api/rooms/{room_id}/push", push_goods, auth=HOST, status=201, also=(200,),
          errors=(409,),
          rules=(
              "`experiment_id` names no experiment of this host",
              "`variants` does not give exactly one creative per variant of the experiment",
          )),
    route("POST", "/api/rooms/{room_id}/withdraw", withdraw_goods, auth=HOST, errors=(409,)),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Add the room routes (called once from ``create_app``)."""
    contract.add_routes(app, ROUTES)
