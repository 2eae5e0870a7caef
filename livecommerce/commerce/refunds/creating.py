"""Creating a refund by a host's decision: a goodwill refund of (part of) an order of its own.

The other refunds are created in SQL, by the ``payments_refund_required`` trigger (package doc).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce.refunds.reading import COLUMNS, WAKE_CHANNEL, to_json
from livecommerce.errors import Conflict, NotFound


async def goodwill(
    conn: asyncpg.Connection,
    *,
    host_id: int,
    order_id: int,
    amount_fen: int | None,
    reason: str,
    key: str,
) -> tuple[dict[str, Any], bool]:
    """A host refunds (part of) a paid, shipped or completed order of its own; (refund, created).

    ``amount_fen`` None = everything not refunded yet. Refunding everything left moves the
    order to ``refunded`` (points reversed once by the order-event rules; stock is not
    restocked: the goods were sold); a partial refund leaves the order as it is. The same
    ``key`` again returns the first refund.

    Raises:
        NotFound: not the host's order. Conflict: not paid (``illegal_transition``), the key
            was used for another amount (``idempotency_key_reused``), or the amount is more
            than what is left to refund (``refund_exceeds_payment``).
    """
    source = f"goodwill:{order_id}:{key}"
    async with conn.transaction():
        order = await conn.fetchrow(
            """SELECT status, transaction_id, user_id FROM orders
               WHERE id = $1 AND host_id = $2 FOR UPDATE""",
            order_id,
            host_id,
        )
        if order is None:
            raise NotFound("no such order")
        existing = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM refunds WHERE source_key = $1", source
        )
        if existing is not None:
            if amount_fen is not None and existing["amount_fen"] != amount_fen:
                raise Conflict(
                    "Idempotency-Key was already used for another refund",
                    code="idempotency_key_reused",
                )
            return to_json(existing), False
        if order["status"] not in ("paid", "shipped", "completed") or not order["transaction_id"]:
            raise Conflict(
                f"cannot refund an order that is {order['status']}", code="illegal_transition"
            )
        paid = await conn.fetchval(
            "SELECT amount_fen FROM payments WHERE transaction_id = $1 FOR UPDATE",
            order["transaction_id"],
        )
        refunded = await conn.fetchval(
            """SELECT COALESCE(sum(amount_fen), 0) FROM refunds
               WHERE transaction_id = $1 AND status <> 'closed'""",
            order["transaction_id"],
        )
        left = paid - refunded
        amount = left if amount_fen is None else amount_fen
        if amount <= 0 or amount > left:
            raise Conflict(
                f"only {left} fen of this payment can still be refunded",
                code="refund_exceeds_payment",
            )
        row = await conn.fetchrow(
            f"""INSERT INTO refunds (order_id, user_id, transaction_id, amount_fen, payment_fen,
                                     reason, source_key)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}""",
            order_id,
            order["user_id"],
            order["transaction_id"],
            amount,
            paid,
            f"goodwill: {reason}" if reason else "goodwill",
            source,
        )
        if amount == left:
            await conn.execute(
                """UPDATE orders SET status = 'refunded', refunded_at = now(),
                          cancel_reason = 'goodwill', updated_at = now() WHERE id = $1""",
                order_id,
            )
        await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
    return to_json(row), True
