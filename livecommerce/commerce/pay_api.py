"""HTTP: the WeChat Pay v3 notification endpoint (the only way an order becomes paid)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model, convert
from livecommerce.commerce import payments, wechatpay
from livecommerce.errors import ValidationError

log = logging.getLogger("livecommerce.payments")


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
    async with call.app[keys.PG_POOL].acquire() as conn:
        outcome = await payments.apply_transaction(conn, txn)
    log.info("payment %s for order %d: %s", txn.transaction_id, txn.order_id, outcome)
    message = "already processed" if outcome == "already_processed" else outcome
    return PayAck(code="SUCCESS", message=message)
