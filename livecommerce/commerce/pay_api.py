"""HTTP: the WeChat Pay v3 notification endpoint (the only way an order becomes paid)."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from livecommerce import keys
from livecommerce.commerce import payments, wechatpay
from livecommerce.errors import ValidationError
from livecommerce.httpio import json_response

log = logging.getLogger("livecommerce.payments")


async def wechat_notify(request: web.Request) -> web.Response:
    """POST /api/pay/wechat/notify: verify, decrypt and apply a payment notification.

    200 ``{"code": "SUCCESS"}`` when applied or already processed (WeChat stops resending);
    401 for a bad/stale signature, 400 for a malformed, foreign or mismatched one (WeChat
    resends those, and they show in the logs).
    """
    pay_keys = request.app[keys.PAY_KEYS]
    body = await request.read()
    wechatpay.verify_notification(pay_keys, request.headers, body)
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValidationError("body", "must be valid JSON") from None
    if not isinstance(envelope, dict):
        raise ValidationError("body", "must be a JSON object")
    event = envelope.get("event_type")
    if event != "TRANSACTION.SUCCESS":
        log.info("ignoring WeChat Pay event %r", str(event)[:64])
        return json_response({"code": "SUCCESS", "message": "ignored"})
    data = wechatpay.decrypt_resource(pay_keys.apiv3_key, envelope.get("resource"))
    txn = payments.parse_transaction(data, pay_keys)
    async with request.app[keys.PG_POOL].acquire() as conn:
        outcome = await payments.apply_transaction(conn, txn)
    log.info("payment %s for order %d: %s", txn.transaction_id, txn.order_id, outcome)
    message = "already processed" if outcome == "already_processed" else outcome
    return json_response({"code": "SUCCESS", "message": message})
