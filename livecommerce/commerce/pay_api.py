"""HTTP: starting a WeChat Pay payment (buyer) and the WeChat Pay v3 notification endpoint.

A notification (or a query of WeChat Pay, see :mod:`prepay` and the payment checker) is the
only way an order becomes paid; ``POST /api/orders/{id}/pay`` only hands the buyer what
``wx.requestPayment`` needs."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model, convert, to
from livecommerce.api.types import Time
from livecommerce.commerce import payments, prepay, wechatpay
from livecommerce.errors import ValidationError
from livecommerce.social import events

log = logging.getLogger("livecommerce.payments")
NOTIFY_PATH = "/api/pay/wechat/notify"


class EncryptedResource(msgspec.Struct, kw_only=True):
    """The AES-256-GCM sealed transaction (WeChat Pay v3 notification ``resource``)."""

    algorithm: Literal["AEAD_AES_256_GCM"]
    ciphertext: Annotated[str, Meta(description="Base64 of the sealed transaction JSON")]
    nonce: Annotated[str, Meta(min_length=12, max_length=12)]
    associated_data: str = ""
    original_type: str | None = None


class WechatPayNotification(msgspec.Struct, kw_only=True):
    """A WeChat Pay v3 notification envelope. Fields WeChat may add later are ignored (not
    refused, unlike our own request bodies: the sender is WeChat, not a client of ours)."""

    event_type: Annotated[str, Meta(description="TRANSACTION.SUCCESS is applied; others ignored")]
    id: str | None = None
    create_time: str | None = None
    resource_type: str | None = None
    summary: str | None = None
    resource: Annotated[
        dict[str, Any] | None, Meta(description="An EncryptedResource for TRANSACTION.SUCCESS")
    ] = None


class PayAck(Model):
    """What WeChat Pay expects back: SUCCESS stops its resends."""

    code: Literal["SUCCESS"]
    message: str


class RequestPayment(Model):
    """The object to pass to `wx.requestPayment` as is (WeChat Pay v3 JSAPI/mini-program)."""

    appId: str
    timeStamp: Annotated[str, Meta(description="Unix seconds, as a string")]
    nonceStr: str
    package: Annotated[str, Meta(description="`prepay_id=<prepay id>`")]
    signType: Literal["RSA"]
    paySign: Annotated[
        str,
        Meta(
            description="Base64 SHA256-RSA by the merchant key over appId, timeStamp, "
            "nonceStr and package, each followed by a newline"
        ),
    ]


class PaymentStart(Model):
    """A WeChat Pay prepay of one order and the parameters that pay it."""

    prepay_id: str
    out_trade_no: str
    valid_until: Annotated[Time, Meta(description="The prepay is reused until this time")]
    payment: RequestPayment


async def pay(call: Call[None, None]) -> PaymentStart:
    """Start paying the caller's pending order: the parameters for `wx.requestPayment`.

    Creates the WeChat Pay v3 JSAPI order (payer openid, amount, `time_expire` = the order's
    `expires_at`) or reuses the one made before while it is valid (same `prepay_id`; the
    signature is fresh each time). The order becomes paid only by WeChat Pay's notification
    (or a query of WeChat Pay), never by this call. 409 when the order is not pending, its
    window closes within a minute, or WeChat Pay says it is already paid or closed; 502 when
    WeChat Pay is unavailable.
    """
    app = call.app
    cfg = app[keys.SETTINGS].wechatpay
    notify_url = cfg.notify_url or str(call.request.url.origin()) + NOTIFY_PATH
    result = await prepay.start_payment(
        app[keys.PG_POOL],
        app[keys.PAY_CLIENT],
        user_id=call.user_id,
        order_id=call.id(),
        notify_url=notify_url,
        prepay_ttl_seconds=cfg.prepay_ttl_seconds,
    )
    return to(PaymentStart, result)


def verify_signature(request: web.Request, raw: bytes) -> None:
    """The platform signature over the exact body (401 when missing, bad or stale)."""
    wechatpay.verify_notification(request.app[keys.PAY_KEYS], request.headers, raw)


async def wechat_notify(call: Call[WechatPayNotification, None]) -> PayAck:
    """Apply a WeChat Pay notification (signature verified, resource decrypted).

    200 `SUCCESS` when applied or already processed (WeChat stops resending); 401 for a
    bad or stale signature; 400 for a malformed, foreign or mismatched notification (WeChat
    resends those, and they show in the logs). WeChat Pay v3 payment notification API.
    """
    note = call.body
    if note.event_type != "TRANSACTION.SUCCESS":
        log.info("ignoring WeChat Pay event %r", note.event_type[:64])
        return PayAck(code="SUCCESS", message="ignored")
    if note.resource is None:
        raise ValidationError("resource", "is required for TRANSACTION.SUCCESS")
    resource = convert(note.resource, EncryptedResource, "resource")
    pay_keys = call.app[keys.PAY_KEYS]
    data = wechatpay.decrypt_resource(pay_keys.apiv3_key, msgspec.structs.asdict(resource))
    txn = payments.parse_transaction(data, pay_keys)
    pool = call.app[keys.PG_POOL]
    async with pool.acquire() as conn:
        outcome = await payments.apply_transaction(conn, txn)
    # Read-your-payment: the order's social effects (group membership and state, flash-sale
    # order, points) are committed before WeChat (and the buyer polling after it) hears back.
    await events.process(pool, call.app[keys.SOCIAL_WORKER].deps, 20, order_id=txn.order_id)
    log.info("payment %s for order %d: %s", txn.transaction_id, txn.order_id, outcome)
    message = "already processed" if outcome == "already_processed" else outcome
    return PayAck(code="SUCCESS", message=message)
