"""HTTP: refunds (buyer's view, host goodwill refunds, WeChat Pay refund notifications) and
after-sales requests (buyer asks, host approves or rejects)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Query, Reply, convert, to
from livecommerce.api.types import MAX_PRICE_FEN, NO_NUL, Cursor
from livecommerce.commerce import aftersales, cursors, refunds, wechatpay
from livecommerce.commerce.pay_api import EncryptedResource, PayAck, WechatPayNotification
from livecommerce.errors import ValidationError

log = logging.getLogger("livecommerce.refunds")
RefundStatus = Literal["pending", "processing", "success", "abnormal", "closed"]
AfterSaleStatus = Literal["requested", "approved", "rejected"]
Text200 = Annotated[str, Meta(min_length=1, max_length=200), NO_NUL]
MAX_PAGE = 50


class Refund(Model):
    """Money going back to the buyer through WeChat Pay (see the refund state machine)."""

    id: int
    out_refund_no: Annotated[str, Meta(description="Merchant refund no. (fixed per refund)")]
    order_id: int
    transaction_id: str
    amount_fen: Annotated[int, Meta(description="Refunded amount, in fen")]
    payment_fen: Annotated[int, Meta(description="The payment it comes from, in fen")]
    reason: str
    status: RefundStatus
    refund_id: Annotated[str | None, Meta(description="WeChat Pay's refund id once accepted")]
    attempts: int
    last_error: Annotated[
        str | None,
        Meta(description="The last failed call; for closed / abnormal: why the buyer was not paid"),
    ]
    reissue_of: Annotated[
        int | None, Meta(description="The closed refund this one asks again for (re-issue)")
    ]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RefundList(Model):
    items: list[Refund]


class GoodwillRefund(Body):
    """A host's refund of (part of) a paid order; no amount = all that is left."""

    amount_fen: (
        Annotated[int, Meta(ge=1, le=MAX_PRICE_FEN, description="Money in fen (1/100 CNY)")] | None
    ) = None
    reason: Annotated[str, Meta(max_length=200), NO_NUL] = ""


class AfterSaleCreate(Body):
    """A buyer's refund request for a paid or shipped order."""

    reason: Text200
    return_goods: Annotated[bool, Meta(description="The buyer will send the goods back")] = False


class Decision(Body):
    """A host's note on its decision (shown to the buyer)."""

    note: Annotated[str, Meta(max_length=200), NO_NUL] = ""


class AfterSale(Model):
    """An after-sales request and its decision."""

    id: int
    order_id: int
    user_id: int
    host_id: int | None
    reason: str
    return_goods: bool
    status: AfterSaleStatus
    host_note: str | None
    created_at: datetime
    decided_at: datetime | None


class AfterSaleList(Model):
    items: list[AfterSale]


class AfterSaleQuery(Query):
    status: AfterSaleStatus | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 20
    cursor: Cursor | None = None


class AfterSalePage(Model):
    items: list[AfterSale]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page")]


async def buyer_refunds(call: Call[None, None]) -> RefundList:
    """The refunds of one of the caller's orders (anyone else's order: 404)."""
    items = await refunds.list_for_order(call.app[keys.PG_POOL], call.id(), user_id=call.user_id)
    return to(RefundList, {"items": items})


async def host_refunds(call: Call[None, None]) -> RefundList:
    """The refunds of one of the host's orders (another host's order: 404)."""
    items = await refunds.list_for_order(call.app[keys.PG_POOL], call.id(), host_id=call.host_id)
    return to(RefundList, {"items": items})


async def goodwill(call: Call[GoodwillRefund, None]) -> Reply[Refund]:
    """Refund (part of) one of the host's paid, shipped or completed orders.

    201 new, 200 a replay of the same Idempotency-Key. Partial refunds of one payment never
    add up to more than it paid (409 `refund_exceeds_payment`); refunding all that is left
    moves the order to `refunded`. WeChat Pay is asked by the refund worker, not in this call.
    A refund WeChat Pay closed (not paid back) no longer counts, and an order it had refunded
    is back to paid / shipped / completed: refund it again with a new key.
    """
    async with call.app[keys.PG_POOL].acquire() as conn:
        refund, created = await refunds.goodwill(
            conn,
            host_id=call.host_id,
            order_id=call.id(),
            amount_fen=call.body.amount_fen,
            reason=call.body.reason,
            key=call.idempotency_key,
        )
    if created:
        call.app[keys.REFUND_WORKER].poke()
    return Reply(to(Refund, refund), status=201 if created else 200)


async def request_after_sale(call: Call[AfterSaleCreate, None]) -> Reply[AfterSale]:
    """The buyer asks for a refund of a paid or shipped order (201; 200 the open one again)."""
    async with call.app[keys.PG_POOL].acquire() as conn:
        row, created = await aftersales.request(
            conn,
            user_id=call.user_id,
            order_id=call.id(),
            reason=call.body.reason,
            return_goods=call.body.return_goods,
        )
    return Reply(to(AfterSale, row), status=201 if created else 200)


async def buyer_after_sales(call: Call[None, None]) -> AfterSaleList:
    """The after-sales requests of one of the caller's orders, oldest first."""
    items = await aftersales.list_for_order(
        call.app[keys.PG_POOL], user_id=call.user_id, order_id=call.id()
    )
    return to(AfterSaleList, {"items": items})


async def host_after_sales(call: Call[None, AfterSaleQuery]) -> AfterSalePage:
    """The host's after-sales requests, newest first, keyset-paginated (optionally one status)."""
    q = call.query
    secret = call.app[keys.SETTINGS].secret
    scope = f"after_sales:{call.host_id}"
    after = cursors.decode(secret, scope, q.cursor, [q.status])
    items, next_id = await aftersales.list_for_host(
        call.app[keys.PG_POOL], call.host_id, status=q.status, after_id=after, limit=q.limit
    )
    next_cursor = None if next_id is None else cursors.encode(secret, scope, next_id, [q.status])
    return to(AfterSalePage, {"items": items, "next_cursor": next_cursor})


async def _decide(call: Call[Decision, None], approve: bool) -> AfterSale:
    async with call.app[keys.PG_POOL].acquire() as conn:
        row = await aftersales.decide(
            conn, host_id=call.host_id, request_id=call.id(), approve=approve, note=call.body.note
        )
    if approve:
        call.app[keys.REFUND_WORKER].poke()
    return to(AfterSale, row)


async def approve(call: Call[Decision, None]) -> AfterSale:
    """The host approves a request: the order is refunded in full (409 if already decided)."""
    return await _decide(call, True)


async def reject(call: Call[Decision, None]) -> AfterSale:
    """The host rejects a request (409 if already decided); the buyer may ask again."""
    return await _decide(call, False)


async def refund_notify(call: Call[WechatPayNotification, None]) -> PayAck:
    """Apply a WeChat Pay refund notification (signature verified, resource decrypted).

    REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED move the refund once (a replay changes
    nothing and is answered 200 `SUCCESS`); CLOSED (not paid back) also sends a host-refunded
    order back or re-issues a refund owed anyway, and gives its points back. 401 for a bad or
    stale signature; 400 for a malformed, foreign or mismatched notification. WeChat Pay v3
    refund notification API.
    """
    note = call.body
    if not note.event_type.startswith("REFUND."):
        log.info("ignoring WeChat Pay event %r on the refund URL", note.event_type[:64])
        return PayAck(code="SUCCESS", message="ignored")
    if note.resource is None:
        raise ValidationError("resource", "is required for REFUND.* events")
    resource = convert(note.resource, EncryptedResource, "resource")
    pay_keys = call.app[keys.PAY_KEYS]
    data = wechatpay.decrypt_resource(pay_keys.apiv3_key, msgspec.structs.asdict(resource))
    refund_id, amount = _parse_refund(data, pay_keys.mch_id)
    pool = call.app[keys.PG_POOL]
    expected = await pool.fetchrow(
        "SELECT amount_fen, order_id FROM refunds WHERE id = $1", refund_id
    )
    if expected is None:
        raise ValidationError("out_refund_no", "no such refund", code="unknown_refund")
    if expected["amount_fen"] != amount:
        raise ValidationError("amount.refund", "does not match the refund", code="amount_mismatch")
    moved = await call.app[keys.REFUND_WORKER].apply(
        refund_id, {"status": data.get("refund_status"), "refund_id": data.get("refund_id")},
        order_id=expected["order_id"],
    )  # fmt: skip
    return PayAck(code="SUCCESS", message="applied" if moved else "already processed")


def _parse_refund(data: dict[str, Any], mch_id: str) -> tuple[int, int]:
    if data.get("mchid") != mch_id:
        raise ValidationError("mchid", "not this merchant", code="wrong_merchant")
    refund_id = refunds.parse_out_refund_no(data.get("out_refund_no"))
    if refund_id is None:
        raise ValidationError("out_refund_no", "not a refund number of ours", code="unknown_refund")
    amount = data.get("amount")
    value = amount.get("refund") if isinstance(amount, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("amount.refund", "must be an integer number of fen")
    return refund_id, value
