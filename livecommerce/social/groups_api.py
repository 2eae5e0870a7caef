"""HTTP: group buying — offers (host), open / join / read groups, open groups of a goods."""

from __future__ import annotations

from aiohttp import web

from livecommerce import inputs, keys
from livecommerce.httpio import json_response
from livecommerce.social import groups
from livecommerce.social.http import host_id, user_id

MAX_PRICE_FEN = 10**10
MAX_FILL_SECONDS = 7 * 24 * 3600


async def create_offer(request: web.Request) -> web.Response:
    """POST /api/host/group-offers {goods_id, group_price_fen, size, fill_seconds}."""
    host = host_id(request)
    body = await inputs.json_object(
        request, ("goods_id", "group_price_fen", "size", "fill_seconds")
    )
    goods_id = inputs.required_int(body, "goods_id", low=1, high=inputs.MAX_ID)
    price = inputs.required_int(body, "group_price_fen", low=0, high=MAX_PRICE_FEN)
    size = inputs.required_int(body, "size", low=2, high=100)
    fill = inputs.required_int(body, "fill_seconds", low=60, high=MAX_FILL_SECONDS)
    async with request.app[keys.PG_POOL].acquire() as conn:
        offer = await groups.create_offer(
            conn, host_id=host, goods_id=goods_id, group_price_fen=price, size=size,
            fill_seconds=fill,
        )  # fmt: skip
    return json_response(offer, status=201)


async def open_group(request: web.Request) -> web.Response:
    """POST /api/group-offers/{id}/groups + Idempotency-Key: open a group (pay to open it)."""
    uid = user_id(request)
    offer_id = inputs.path_id(request)
    key = inputs.idempotency_key(request)
    await inputs.json_object(request, ()) if request.can_read_body else None
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.PG_POOL].acquire() as conn:
        result, created = await groups.open_group(
            conn, settings.groups, user_id=uid, offer_id=offer_id, idempotency_key=key,
            payment_timeout_seconds=settings.orders.payment_timeout_seconds,
        )  # fmt: skip
    if created:
        request.app[keys.ORDER_REAPER].poke()
    return json_response(result, status=201 if created else 200)


async def join(request: web.Request) -> web.Response:
    """POST /api/groups/{id}/join + Idempotency-Key: join an open group (pay to count)."""
    uid = user_id(request)
    group_id = inputs.path_id(request)
    key = inputs.idempotency_key(request)
    await inputs.json_object(request, ()) if request.can_read_body else None
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.PG_POOL].acquire() as conn:
        result, created = await groups.join_group(
            conn, settings.groups, user_id=uid, group_id=group_id, idempotency_key=key,
            payment_timeout_seconds=settings.orders.payment_timeout_seconds,
        )  # fmt: skip
    if created:
        request.app[keys.ORDER_REAPER].poke()
    return json_response(result, status=201 if created else 200)


async def read(request: web.Request) -> web.Response:
    """GET /api/groups/{id}: members (nickname, avatar), seats and time left."""
    group_id = inputs.path_id(request)
    return json_response(await groups.get_group(request.app[keys.PG_POOL], group_id))


async def list_for_goods(request: web.Request) -> web.Response:
    """GET /api/goods/{id}/groups?limit=: open groups of the goods to join."""
    goods_id = inputs.path_id(request)
    limit = inputs.query_int(request, "limit", low=1, high=groups.MAX_LIST) or 20
    items = await groups.list_open(request.app[keys.PG_POOL], goods_id, limit)
    return json_response({"items": items})
