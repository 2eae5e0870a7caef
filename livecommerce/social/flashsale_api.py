"""HTTP: flash sales — hosts create and push them, buyers buy (thin: parse, call, answer)."""

from __future__ import annotations

import contextlib

from aiohttp import web
from redis.exceptions import RedisError

from livecommerce import inputs, keys
from livecommerce.httpio import json_response
from livecommerce.social import flashsale
from livecommerce.social.http import host_id, timestamp, user_id

MAX_PRICE_FEN = 10**10
MAX_STOCK = 10**7


async def create(request: web.Request) -> web.Response:
    """POST /api/host/flash-sales: a host creates a sale of its goods."""
    host = host_id(request)
    body = await inputs.json_object(
        request,
        ("goods_id", "sale_price_fen", "stock", "per_user_limit", "starts_at", "ends_at"),
    )
    cfg = request.app[keys.SETTINGS].flash_sale
    goods_id = inputs.required_int(body, "goods_id", low=1, high=inputs.MAX_ID)
    price = inputs.required_int(body, "sale_price_fen", low=0, high=MAX_PRICE_FEN)
    stock = inputs.required_int(body, "stock", low=1, high=MAX_STOCK)
    limit = inputs.integer(body, "per_user_limit", low=1, high=cfg.max_per_user_limit, default=1)
    assert limit is not None
    starts_at = timestamp(body, "starts_at")
    ends_at = timestamp(body, "ends_at")
    async with request.app[keys.PG_POOL].acquire() as conn:
        sale = await flashsale.create_sale(
            conn,
            cfg,
            host_id=host,
            goods_id=goods_id,
            sale_price_fen=price,
            stock=stock,
            per_user_limit=limit,
            starts_at=starts_at,
            ends_at=ends_at,
        )
    # Warm Redis now rather than on the first buyer; if Redis is down, the first buy loads it.
    with contextlib.suppress(RedisError, OSError):
        await flashsale.reconcile(
            request.app[keys.PG_POOL], request.app[keys.FLASH_STOCK], sale["id"]
        )
    return json_response(sale, status=201)


async def read(request: web.Request) -> web.Response:
    """GET /api/flash-sales/{id}: the sale with its live stock left."""
    sale_id = inputs.path_id(request)
    app = request.app
    return json_response(
        await flashsale.get_sale(app[keys.PG_POOL], app[keys.FLASH_STOCK], sale_id)
    )


async def buy(request: web.Request) -> web.Response:
    """POST /api/flash-sales/{id}/buy {quantity?} + Idempotency-Key: 201 new, 200 replay."""
    uid = user_id(request)
    sale_id = inputs.path_id(request)
    key = inputs.idempotency_key(request)
    body = await inputs.json_object(request, ("quantity",)) if request.can_read_body else {}
    app = request.app
    stock = app[keys.FLASH_STOCK]
    quantity = inputs.integer(body, "quantity", low=1, high=stock.cfg.max_per_user_limit, default=1)
    assert quantity is not None
    purchase = await flashsale.buy(
        app[keys.PG_POOL], stock, sale_id=sale_id, user_id=uid, quantity=quantity,
        idempotency_key=key,
    )  # fmt: skip
    if purchase.created:
        app[keys.ORDER_REAPER].poke()
        if purchase.stock_left is not None:
            await flashsale.announce_stock(app[keys.BROKER], stock, sale_id, purchase.stock_left)
    return json_response(purchase.order, status=201 if purchase.created else 200)


async def push(request: web.Request) -> web.Response:
    """POST /api/host/flash-sales/{id}/push {room_id, show_seconds?}: show it in a live room."""
    host = host_id(request)
    sale_id = inputs.path_id(request)
    body = await inputs.json_object(request, ("room_id", "show_seconds"))
    app = request.app
    room_id = inputs.required_int(body, "room_id", low=1, high=inputs.MAX_ID)
    default = app[keys.SETTINGS].rooms.bubble_default_seconds
    show = inputs.integer(body, "show_seconds", low=1, high=3600, default=default)
    assert show is not None
    result = await flashsale.push_to_room(
        app[keys.PG_POOL], app[keys.BROKER], app[keys.FLASH_STOCK], host_id=host,
        room_id=room_id, sale_id=sale_id, show_seconds=show,
    )  # fmt: skip
    return json_response(result)
