"""HTTP (development only): pay one of the caller's orders through the fake WeChat Pay.

The audience page's "Pay" button calls this in development, standing in for ``wx.requestPayment``
(a browser cannot reach the fake WeChat's origin): the server makes the real JSAPI prepay
(``prepay.start_payment``, as ``POST /api/orders/{id}/pay`` does), hands the signed parameters to
the in-process fake WeChat's ``/dev/pay``, which verifies ``paySign`` and posts a signed payment
notification back to ``/api/pay/wechat/notify`` exactly as WeChat Pay would. Not routed in
production mode.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model, to
from livecommerce.commerce import orders, prepay
from livecommerce.commerce.orders_api import Order
from livecommerce.commerce.pay_api import NOTIFY_PATH
from livecommerce.errors import UpstreamError


class DevPaid(Model):
    order: Order
    notify_status: Annotated[int, Meta(description="Our notify endpoint's answer to the fake")]


async def dev_pay(call: Call[None, None]) -> DevPaid:
    """Pay the caller's pending order through the fake WeChat Pay (development mode only).

    409 ``illegal_transition`` unless the order awaits payment (or ``payment_expired``); 502 when
    the fake or WeChat Pay is not up.
    """
    app, order_id = call.app, call.id()
    pool = app[keys.PG_POOL]
    fake_url = app.get(keys.FAKE_WECHAT_URL)
    if fake_url is None:
        raise UpstreamError("no fake WeChat in this server", code="no_fake_wechat")
    cfg = app[keys.SETTINGS].wechatpay
    # The real path first: the JSAPI prepay and the signed wx.requestPayment parameters...
    started = await prepay.start_payment(
        pool,
        app[keys.PAY_CLIENT],
        user_id=call.user_id,
        order_id=order_id,
        notify_url=cfg.notify_url or str(call.request.url.origin()) + NOTIFY_PATH,
        prepay_ttl_seconds=cfg.prepay_ttl_seconds,
    )
    # ...then what WeChat's client does with them: the fake checks paySign, pays the prepay and
    # posts WeChat Pay's signed, encrypted notification to our notify endpoint.
    session = app[keys.WECHAT_CLIENT].session
    async with session.post(fake_url + "/dev/pay", json={"payment": started["payment"]}) as resp:
        if resp.status != 200:
            raise UpstreamError("the fake WeChat Pay refused", code="upstream_error")
        answer = await resp.json()
    paid = await orders.get_order(pool, call.user_id, order_id)
    return DevPaid(order=to(Order, paid), notify_status=int(answer.get("notify_status", 0)))
