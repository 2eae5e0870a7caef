"""Starting a payment: the WeChat Pay JSAPI order of a pending order, reused while valid.

``start_payment`` answers what ``wx.requestPayment`` needs. WeChat Pay itself returns the same
``prepay_id`` for the same ``out_trade_no`` and parameters, and we store it on the order
(migration 0009) so a repeated call costs no WeChat round trip while ``prepay_valid_until`` is
ahead; only a prepay near its end (or none) makes a new request. The WeChat call happens
outside any transaction (no row lock held across the network); storing its answer is a
conditional UPDATE on ``status = 'pending_payment'``, so an order paid or cancelled meanwhile
is answered 409 and its prepay is not recorded.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import asyncpg

from livecommerce.commerce import payments
from livecommerce.commerce.orders import out_trade_no
from livecommerce.commerce.payclient import (
    OrderClosed,
    OrderPaid,
    PayError,
    PayUnavailable,
    WechatPayClient,
)
from livecommerce.errors import Conflict, NotFound, UpstreamError

log = logging.getLogger("livecommerce.payments")
# WeChat refuses a time_expire less than a minute ahead; a stored prepay this close to its end
# is replaced rather than handed to a buyer who would fail to pay it.
MARGIN = timedelta(seconds=60)
INT32_MAX = 2**31 - 1


async def start_payment(
    pool: asyncpg.Pool,
    client: WechatPayClient,
    *,
    user_id: int,
    order_id: int,
    notify_url: str,
    prepay_ttl_seconds: float,
) -> dict[str, Any]:
    """The ``wx.requestPayment`` parameters for the buyer's own pending order.

    Returns ``{"prepay_id", "out_trade_no", "valid_until", "payment": {appId, timeStamp,
    nonceStr, package, signType, paySign}}``.

    Raises:
        NotFound: not the caller's order. Conflict: not pending (``illegal_transition``), its
            payment window closes within a minute (``payment_expired``), or WeChat says it is
            paid (applied from a query first) or closed. UpstreamError: WeChat Pay unavailable.
    """
    row = await pool.fetchrow(
        """SELECT o.status, o.total_fen, o.title, o.expires_at, o.prepay_id,
                  o.prepay_valid_until, u.openid, now() AS db_now
           FROM orders o JOIN users u ON u.id = o.user_id
           WHERE o.id = $1 AND o.user_id = $2""",
        order_id,
        user_id,
    )
    if row is None:
        raise NotFound("no such order")
    if row["status"] != "pending_payment":
        raise Conflict(f"cannot pay an order that is {row['status']}", code="illegal_transition")
    now = row["db_now"]
    if row["prepay_id"] and row["prepay_valid_until"] > now + MARGIN:
        return _answer(client, order_id, row["prepay_id"], row["prepay_valid_until"])
    if row["expires_at"] <= now + MARGIN:
        raise Conflict("the payment window of this order has closed", code="payment_expired")
    trade_no = out_trade_no(order_id)
    try:
        prepay_id = await client.jsapi_prepay(
            out_trade_no=trade_no,
            description=row["title"],
            total_fen=row["total_fen"],
            openid=row["openid"],
            notify_url=notify_url,
            time_expire=row["expires_at"],
        )
    except OrderPaid:
        await apply_from_query(pool, client, order_id)
        raise Conflict("this order is already paid", code="already_paid") from None
    except OrderClosed:
        raise Conflict("this order was closed by WeChat Pay", code="payment_closed") from None
    except PayUnavailable as exc:
        log.warning("JSAPI prepay of order %d failed: %s", order_id, exc)
        raise UpstreamError(
            "WeChat Pay is unavailable, try again", code="wechatpay_unavailable"
        ) from None
    except PayError as exc:
        log.error("JSAPI prepay of order %d refused: %s", order_id, exc)
        raise UpstreamError("WeChat Pay refused the order", code="wechatpay_refused") from None
    stored = await pool.fetchrow(
        """UPDATE orders SET prepay_id = $2, prepay_at = now(), pay_checked_at = NULL,
                  prepay_valid_until = LEAST(expires_at, now() + make_interval(secs => $3)),
                  pay_notify_url = $4
           WHERE id = $1 AND status = 'pending_payment'
           RETURNING prepay_id, prepay_valid_until""",
        order_id,
        prepay_id,
        float(prepay_ttl_seconds),
        notify_url,
    )
    if stored is None:
        status = await pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
        raise Conflict(f"cannot pay an order that is {status}", code="illegal_transition")
    return _answer(client, order_id, stored["prepay_id"], stored["prepay_valid_until"])


def _answer(
    client: WechatPayClient, order_id: int, prepay_id: str, valid_until: Any
) -> dict[str, Any]:
    return {
        "prepay_id": prepay_id,
        "out_trade_no": out_trade_no(order_id),
        "valid_until": valid_until.isoformat(),
        "payment": client.merchant.request_payment(prepay_id),
    }


async def apply_from_query(
    pool: asyncpg.Pool, client: WechatPayClient, order_id: int
) -> payments.Outcome | None:
    """Ask WeChat Pay for the order; a SUCCESS transaction is applied like a notification.

    Returns the outcome (``applied``, ``already_processed``, ...) or None when WeChat has no
    paid transaction for it. Raises PayError (transient or not) to the caller.
    """
    data = await client.query_order(out_trade_no(order_id))
    if data.get("trade_state") != "SUCCESS":
        return None
    txn = payments.parse_transaction(data, client.keys)
    async with pool.acquire() as conn:
        outcome = await payments.apply_transaction(conn, txn)
    log.info("payment %s of order %d found by query: %s", txn.transaction_id, order_id, outcome)
    return outcome
