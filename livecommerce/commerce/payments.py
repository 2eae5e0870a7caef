"""Applying a verified WeChat Pay transaction to its order, exactly once per transaction id.

WeChat delivers notifications at least once (and retries until it gets a 2xx), so a
transaction is applied under the order's row lock, and the ``payments`` primary key records it:
an insert that touches 0 rows means "already processed" and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from livecommerce.commerce.orders import parse_out_trade_no
from livecommerce.commerce.wechatpay import PayKeys
from livecommerce.errors import ValidationError
from livecommerce.notify import outbox

log = logging.getLogger("livecommerce.payments")

Outcome = Literal["applied", "already_processed", "refund_required", "ignored"]


@dataclass(frozen=True, slots=True)
class Transaction:
    order_id: int
    transaction_id: str
    trade_state: str
    total_fen: int
    payer_openid: str
    success_time: str


def parse_transaction(data: dict[str, Any], keys: PayKeys) -> Transaction:
    """Check the decrypted transaction belongs to this merchant/app and has sane fields.

    Raises:
        ValidationError: naming the field that is missing, malformed or not ours.
    """
    if data.get("mchid") != keys.mch_id:
        raise ValidationError("mchid", "not this merchant", code="wrong_merchant")
    if data.get("appid") != keys.app_id:
        raise ValidationError("appid", "not this app", code="wrong_app")
    order_id = parse_out_trade_no(data.get("out_trade_no"))
    if order_id is None:
        raise ValidationError("out_trade_no", "not an order number of ours", code="unknown_order")
    txn_id = data.get("transaction_id")
    if not isinstance(txn_id, str) or not 1 <= len(txn_id) <= 64:
        raise ValidationError("transaction_id", "missing or malformed")
    amount = data.get("amount")
    total = amount.get("total") if isinstance(amount, dict) else None
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValidationError("amount.total", "must be an integer number of fen")
    payer = data.get("payer")
    openid = payer.get("openid") if isinstance(payer, dict) else ""
    return Transaction(
        order_id=order_id,
        transaction_id=txn_id,
        trade_state=str(data.get("trade_state", "")),
        total_fen=total,
        payer_openid=openid if isinstance(openid, str) else "",
        success_time=str(data.get("success_time", ""))[:64],
    )


async def apply_transaction(conn: asyncpg.Connection, txn: Transaction) -> Outcome:
    """Mark the order paid (once); a payment for a cancelled order re-takes stock or refunds.

    Raises:
        ValidationError: unknown order (``out_trade_no``) or an amount that is not the order's
            total (``amount.total``, code ``amount_mismatch``); nothing is recorded then.
    """
    if txn.trade_state != "SUCCESS":
        return "ignored"
    async with conn.transaction():
        order = await conn.fetchrow(
            "SELECT status, total_fen, goods_id, quantity FROM orders WHERE id = $1 FOR UPDATE",
            txn.order_id,
        )
        if order is None:
            raise ValidationError("out_trade_no", "no such order", code="unknown_order")
        if txn.total_fen != order["total_fen"]:
            log.error(
                "payment %s for order %d: amount %d != order total %d; not applied",
                txn.transaction_id,
                txn.order_id,
                txn.total_fen,
                order["total_fen"],
            )
            raise ValidationError(
                "amount.total", "does not match the order", code="amount_mismatch"
            )
        inserted = await conn.fetchval(
            """INSERT INTO payments (transaction_id, order_id, amount_fen, outcome, payer_openid,
                                     success_time)
               VALUES ($1, $2, $3, 'applied', $4, $5)
               ON CONFLICT (transaction_id) DO NOTHING RETURNING 1""",
            txn.transaction_id,
            txn.order_id,
            txn.total_fen,
            txn.payer_openid,
            txn.success_time,
        )
        if inserted is None:
            return "already_processed"
        outcome: Outcome = "applied"
        if order["status"] == "pending_payment":
            await conn.execute(
                """UPDATE orders SET status = 'paid', paid_at = now(), transaction_id = $2,
                          updated_at = now() WHERE id = $1""",
                txn.order_id,
                txn.transaction_id,
            )
            await outbox.order_event(conn, txn.order_id, "paid")
        elif order["status"] == "cancelled":
            outcome = await _late_payment(conn, txn, order["goods_id"], order["quantity"])
        else:
            # Paid twice (two prepays of one order): keep the first, give this one back.
            outcome = "refund_required"
        if outcome == "refund_required":
            log.warning(
                "payment %s for order %d (%s) must be refunded",
                txn.transaction_id,
                txn.order_id,
                order["status"],
            )
            await conn.execute(
                "UPDATE payments SET outcome = 'refund_required' WHERE transaction_id = $1",
                txn.transaction_id,
            )
        return outcome


async def _late_payment(
    conn: asyncpg.Connection, txn: Transaction, goods_id: int, quantity: int
) -> Outcome:
    """The order was cancelled (stock released) before the money arrived: take the stock again
    if it is still there, else the order becomes refunded. Never oversells."""
    taken = await conn.fetchval(
        "UPDATE goods SET stock = stock - $2 WHERE id = $1 AND stock >= $2 RETURNING 1",
        goods_id,
        quantity,
    )
    if taken:
        await conn.execute(
            """UPDATE orders SET status = 'paid', paid_at = now(), transaction_id = $2,
                      stock_held = true, updated_at = now() WHERE id = $1""",
            txn.order_id,
            txn.transaction_id,
        )
        await outbox.order_event(conn, txn.order_id, "paid")
        return "applied"
    await conn.execute(
        """UPDATE orders SET status = 'refunded', refunded_at = now(), transaction_id = $2,
                  updated_at = now() WHERE id = $1""",
        txn.order_id,
        txn.transaction_id,
    )
    return "refund_required"
