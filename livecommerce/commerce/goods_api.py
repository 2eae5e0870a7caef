"""HTTP: goods create/edit (host token) and the public feed."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livecommerce import inputs, keys
from livecommerce.auth.http import require_claims
from livecommerce.commerce import cursors, goods
from livecommerce.commerce.goods import GoodsInput
from livecommerce.httpio import json_response

FIELDS = ("title", "description", "images", "price_fen", "stock", "category", "status", "room_ids")
MAX_PRICE_FEN = 10**10  # 100 million yuan
MAX_STOCK = 10**7


def _goods_input(body: dict[str, Any], *, create: bool) -> GoodsInput:
    return GoodsInput(
        title=inputs.text(body, "title", max_len=200, min_len=1, required=create),
        description=inputs.text(body, "description", max_len=5000),
        images=inputs.url_list(body, "images", max_items=9),
        price_fen=inputs.integer(body, "price_fen", low=0, high=MAX_PRICE_FEN, required=create),
        stock=inputs.integer(body, "stock", low=0, high=MAX_STOCK, required=create),
        category=inputs.text(body, "category", max_len=50),
        status=inputs.text(body, "status", max_len=20, choices=goods.STATUSES),
        room_ids=inputs.id_list(body, "room_ids", max_items=20),
    )


def _host(request: web.Request) -> int:
    host_id = require_claims(request, "host").host_id
    assert host_id is not None
    return host_id


async def create(request: web.Request) -> web.Response:
    """POST /api/goods: a host lists new goods."""
    host_id = _host(request)
    body = await inputs.json_object(request, FIELDS)
    g = _goods_input(body, create=True)
    async with request.app[keys.PG_POOL].acquire() as conn:
        item = await goods.create_goods(conn, host_id, g)
    return json_response(item, status=201)


async def update(request: web.Request) -> web.Response:
    """PATCH /api/goods/{id}: a host edits its own goods (given fields only)."""
    host_id = _host(request)
    goods_id = inputs.path_id(request)
    body = await inputs.json_object(request, FIELDS)
    g = _goods_input(body, create=False)
    async with request.app[keys.PG_POOL].acquire() as conn:
        item = await goods.update_goods(conn, host_id, goods_id, g)
    return json_response(item)


async def read(request: web.Request) -> web.Response:
    """GET /api/goods/{id}: one goods item (drafts are not public)."""
    goods_id = inputs.path_id(request)
    return json_response(await goods.get_goods(request.app[keys.PG_POOL], goods_id, public=True))


async def feed(request: web.Request) -> web.Response:
    """GET /api/goods?category=&room_id=&limit=&cursor=: the waterfall feed, newest first."""
    q = request.query
    category = inputs.text(dict(q), "category", max_len=50) or None
    room_id = inputs.query_int(request, "room_id", low=1, high=inputs.MAX_ID)
    limit = inputs.query_int(request, "limit", low=1, high=goods.MAX_PAGE) or 20
    filters = [category, room_id]
    secret = request.app[keys.SETTINGS].secret
    after = cursors.decode(secret, "goods", q.get("cursor"), filters)
    items, next_id = await goods.feed(
        request.app[keys.PG_POOL], limit=limit, after_id=after, category=category, room_id=room_id
    )
    next_cursor = None if next_id is None else cursors.encode(secret, "goods", next_id, filters)
    return json_response({"items": items, "next_cursor": next_cursor})
