"""HTTP (development only): pay one of the caller's orders through the fake WeChat Pay.

The audience page's "Pay" button calls this in development: the server asks the in-process fake
WeChat (``/dev/pay``) to pay the order, and the fake posts a signed payment notification back to
``/api/pay/wechat/notify`` exactly as WeChat Pay would. Not routed in production mode.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model, to
from livecommerce.commerce import orders
from livecommerce.commerce.orders_api import Order
from livecommerce.errors import Conflict, UpstreamError


class DevPaid(Model):
    order: Order
    notify_status: Annotated[int, Meta(description="Our notify endpoint's answer to the fake")]


async def dev_pay(call: Call[None, None]) -> DevPaid:
    """Pay the caller's pending order through the fake WeChat Pay (development mode only).

    409 ``illegal_transition`` unless the order awaits payment; 502 when the fake is not up.
    """
    app, order_id = call.app, call.id()
    pool = app[keys.PG_POOL]
    order = await orders.get_order(pool, call.user_id, order_id)
    if order["status"] != "pending_payment":
        raise Conflict(f"cannot pay an order that is {order['status']}", code="illegal_transition")
    fake_url = app.get(keys.FAKE_WECHAT_URL)
    if fake_url is None:
        raise UpstreamError("no fake WeChat in this server", code="no_fake_wechat")
    notify = str(call.request.url.origin()) + "/api/pay/wechat/notify"
    request = {"out_trade_no": order["out_trade_no"], "total": order["total_fen"],
               "notify_url": notify}  # fmt: skip
    session = app[keys.WECHAT_CLIENT].session
    async with session.post(fake_url + "/dev/pay", json=request) as resp:
        if resp.status != 200:
            raise UpstreamError("the fake WeChat Pay refused", code="upstream_error")
        answer = await resp.json()
    paid = await orders.get_order(pool, call.user_id, order_id)
    return DevPaid(order=to(Order, paid), notify_status=int(answer.get("notify_status", 0)))
