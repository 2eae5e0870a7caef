"""HTTP: the buyer's orders (user token) and shipping (host token)."""

from __future__ import annotations

from aiohttp import web

from livecommerce import inputs, keys
from livecommerce.auth.http import require_claims
from livecommerce.commerce import cursors, orders
from livecommerce.httpio import json_response


def _user(request: web.Request) -> int:
    user_id = require_claims(request, "user").user_id
    assert user_id is not None
    return user_id


async def create(request: web.Request) -> web.Response:
    """POST /api/orders {goods_id, quantity} + Idempotency-Key: 201 new, 200 a replay."""
    user_id = _user(request)
    key = inputs.idempotency_key(request)
    body = await inputs.json_object(request, ("goods_id", "quantity"))
    settings = request.app[keys.SETTINGS]
    goods_id = inputs.required_int(body, "goods_id", low=1, high=inputs.MAX_ID)
    quantity = inputs.required_int(body, "quantity", low=1, high=settings.orders.max_quantity)
    async with request.app[keys.PG_POOL].acquire() as conn:
        order, created = await orders.create_order(
            conn,
            user_id=user_id,
            goods_id=goods_id,
            quantity=quantity,
            idempotency_key=key,
            payment_timeout_seconds=settings.orders.payment_timeout_seconds,
        )
    if created:
        request.app[keys.ORDER_REAPER].poke()
    return json_response(order, status=201 if created else 200)


async def list_mine(request: web.Request) -> web.Response:
    """GET /api/orders?status=&limit=&cursor=: the caller's orders, newest first."""
    user_id = _user(request)
    q = request.query
    status = inputs.text(dict(q), "status", max_len=20, choices=orders.STATUSES)
    limit = inputs.query_int(request, "limit", low=1, high=orders.MAX_PAGE) or 20
    secret = request.app[keys.SETTINGS].secret
    scope = f"orders:{user_id}"
    after = cursors.decode(secret, scope, q.get("cursor"), [status])
    items, next_id = await orders.list_orders(
        request.app[keys.PG_POOL], user_id, limit=limit, after_id=after, status=status
    )
    next_cursor = None if next_id is None else cursors.encode(secret, scope, next_id, [status])
    return json_response({"items": items, "next_cursor": next_cursor})


async def read(request: web.Request) -> web.Response:
    """GET /api/orders/{id}: one of the caller's orders (anyone else's: 404)."""
    user_id = _user(request)
    order_id = inputs.path_id(request)
    return json_response(await orders.get_order(request.app[keys.PG_POOL], user_id, order_id))


async def cancel(request: web.Request) -> web.Response:
    """POST /api/orders/{id}/cancel: the buyer cancels an unpaid order."""
    user_id = _user(request)
    order_id = inputs.path_id(request)
    async with request.app[keys.PG_POOL].acquire() as conn:
        return json_response(await orders.cancel_order(conn, user_id, order_id))


async def confirm(request: web.Request) -> web.Response:
    """POST /api/orders/{id}/confirm: the buyer confirms receipt of a shipped order."""
    user_id = _user(request)
    order_id = inputs.path_id(request)
    async with request.app[keys.PG_POOL].acquire() as conn:
        return json_response(await orders.confirm_received(conn, user_id, order_id))


async def ship(request: web.Request) -> web.Response:
    """POST /api/host/orders/{id}/ship {carrier, tracking_no}: the host ships a paid order."""
    host_id = require_claims(request, "host").host_id
    assert host_id is not None
    order_id = inputs.path_id(request)
    body = await inputs.json_object(request, ("carrier", "tracking_no"))
    carrier = inputs.required_text(body, "carrier", max_len=50)
    tracking_no = inputs.required_text(body, "tracking_no", max_len=64)
    async with request.app[keys.PG_POOL].acquire() as conn:
        return json_response(await orders.ship_order(conn, host_id, order_id, carrier, tracking_no))
