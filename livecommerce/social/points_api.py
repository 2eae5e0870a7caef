"""HTTP: the caller's points — actions (check-in, share), balance, expiring lots, history,
and checkout with points."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from livecommerce import inputs, keys
from livecommerce.commerce import cursors
from livecommerce.errors import ValidationError
from livecommerce.httpio import json_response
from livecommerce.social import checkout as checkout_service
from livecommerce.social import points
from livecommerce.social.http import user_id

MAX_POINTS = 10**9


async def action(request: web.Request) -> web.Response:
    """POST /api/points/actions {action: checkin|share, goods_id?}: earn points by the rules."""
    uid = user_id(request)
    body = await inputs.json_object(request, ("action", "goods_id"))
    name = inputs.required_text(body, "action", max_len=32)
    if name not in points.ACTIONS:
        raise ValidationError("action", f"unknown action; one of {', '.join(points.ACTIONS)}",
                              code="unknown_action")  # fmt: skip
    cfg = request.app[keys.SETTINGS].points
    async with request.app[keys.PG_POOL].acquire() as conn:
        if name == "checkin":
            if "goods_id" in body:
                raise ValidationError("goods_id", "not used by checkin")
            result = await points.checkin(conn, cfg, uid)
        else:
            goods_id = inputs.required_int(body, "goods_id", low=1, high=inputs.MAX_ID)
            result = await points.share(conn, cfg, uid, goods_id)
    return json_response(result)


async def balance(request: web.Request) -> web.Response:
    """GET /api/points: the caller's spendable balance."""
    uid = user_id(request)
    return json_response({"balance": await points.balance(request.app[keys.PG_POOL], uid)})


async def expiring(request: web.Request) -> web.Response:
    """GET /api/points/expiring?days=: lots expiring soon (default points.expiring_soon_days)."""
    uid = user_id(request)
    cfg = request.app[keys.SETTINGS].points
    days = inputs.query_int(request, "days", low=1, high=3660) or cfg.expiring_soon_days
    lots = await points.expiring(request.app[keys.PG_POOL], uid, timedelta(days=days))
    return json_response({"days": days, "lots": lots, "points": sum(x["points"] for x in lots)})


async def history(request: web.Request) -> web.Response:
    """GET /api/points/history?limit=&cursor=: the caller's ledger, newest first."""
    uid = user_id(request)
    limit = inputs.query_int(request, "limit", low=1, high=points.MAX_PAGE) or 20
    secret = request.app[keys.SETTINGS].secret
    scope = f"points:{uid}"
    after = cursors.decode(secret, scope, request.query.get("cursor"), [])
    items, next_id = await points.history(request.app[keys.PG_POOL], uid, limit=limit,
                                          after_id=after)  # fmt: skip
    next_cursor = None if next_id is None else cursors.encode(secret, scope, next_id, [])
    return json_response({"items": items, "next_cursor": next_cursor})


async def checkout(request: web.Request) -> web.Response:
    """POST /api/points/checkout {goods_id, quantity, points} + Idempotency-Key: an order with
    points off its total, atomically (201 new, 200 replay)."""
    uid = user_id(request)
    key = inputs.idempotency_key(request)
    body = await inputs.json_object(request, ("goods_id", "quantity", "points"))
    settings = request.app[keys.SETTINGS]
    goods_id = inputs.required_int(body, "goods_id", low=1, high=inputs.MAX_ID)
    quantity = inputs.required_int(body, "quantity", low=1, high=settings.orders.max_quantity)
    spend = inputs.required_int(body, "points", low=0, high=MAX_POINTS)
    async with request.app[keys.PG_POOL].acquire() as conn:
        order, created = await checkout_service.checkout(
            conn, settings.points, user_id=uid, goods_id=goods_id, quantity=quantity,
            points_to_spend=spend, idempotency_key=key,
            payment_timeout_seconds=settings.orders.payment_timeout_seconds,
        )  # fmt: skip
    if created:
        request.app[keys.ORDER_REAPER].poke()
    return json_response(order, status=201 if created else 200)
