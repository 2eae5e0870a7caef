"""Refunds owed to buyers (migration 0010): creating them, their states, the buyer's notices.

A refund row is created in the transaction that decides the money goes back: by the
``payments_refund_required`` trigger for a payment marked ``refund_required`` (a double
payment, a late payment whose stock is gone, a failed group, a released flash-sale unit, an
approved after-sales request) or by :func:`goodwill` for a host's full or partial refund. The
refund worker (:mod:`refund_worker`) then asks WeChat Pay with the row's fixed
``out_refund_no``; notifications and queries move it::

    pending --WeChat accepted--> processing --notification / query--> success | abnormal | closed
       (transient failures: retried with exponential backoff, same out_refund_no)

Every state write is a conditional UPDATE from a non-final state, so a replayed notification
or a query racing a notification applies once; the buyer's notices are outbox rows with a
dedupe key per refund and event.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce import merchant_no
from livecommerce.errors import Conflict, NotFound
from livecommerce.notify import outbox

FINAL = ("success", "abnormal", "closed")
COLUMNS = """id, order_id, transaction_id, amount_fen, payment_fen, reason, status, refund_id,
    attempts, last_error, created_at, updated_at, finished_at"""
_TIMES = ("created_at", "updated_at", "finished_at")
WAKE_CHANNEL = "lc_refunds"


def out_refund_no(refund_id: int) -> str:
    """The merchant refund number sent to WeChat Pay (fixed per row: retries are idempotent)."""
    return merchant_no.make("RF", refund_id)


def parse_out_refund_no(value: object) -> int | None:
    return merchant_no.parse("RF", value)


def to_json(row: asyncpg.Record) -> dict[str, Any]:
    out = merchant_no.row_json(row, _TIMES)
    out["out_refund_no"] = out_refund_no(row["id"])
    return out


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


async def list_for_order(
    conn: asyncpg.Connection | asyncpg.Pool,
    order_id: int,
    *,
    user_id: int | None = None,
    host_id: int | None = None,
) -> list[dict[str, Any]]:
    """The refunds of an order the caller (buyer ``user_id`` or host ``host_id``) can see.

    Raises:
        NotFound: the order is not the caller's.
    """
    owner = await conn.fetchval(
        """SELECT 1 FROM orders WHERE id = $1
           AND ($2::bigint IS NULL OR user_id = $2) AND ($3::bigint IS NULL OR host_id = $3)""",
        order_id,
        user_id,
        host_id,
    )
    if owner is None or (user_id is None and host_id is None):
        raise NotFound("no such order")
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY id", order_id
    )
    return [to_json(r) for r in rows]


async def set_state(
    conn: asyncpg.Connection, refund_id: int, status: str, wechat_refund_id: str | None
) -> bool:
    """Move a refund to ``status`` (processing or a final one) once; True when it moved.

    Moving to ``processing`` queues the buyer's ``refund_started`` notice, ``success`` their
    ``refund_succeeded`` one (each once per refund, whatever delivered the news).
    """
    async with conn.transaction():
        allowed = ("pending",) if status == "processing" else ("pending", "processing")
        row = await conn.fetchrow(
            """UPDATE refunds SET status = $2, refund_id = COALESCE($3, refund_id),
                      updated_at = now(), last_error = NULL,
                      finished_at = CASE WHEN $2 = ANY($4::text[]) THEN now() END
               WHERE id = $1 AND status = ANY($5::text[])
               RETURNING user_id, order_id, amount_fen, reason""",
            refund_id,
            status,
            wechat_refund_id,
            list(FINAL),
            list(allowed),
        )
        if row is None:
            return False
        if status in ("processing", "success"):
            await _notice(conn, refund_id, row, "started")
        if status == "success":
            await _notice(conn, refund_id, row, "succeeded")
    return True


async def _notice(
    conn: asyncpg.Connection, refund_id: int, row: asyncpg.Record, event: str
) -> None:
    title = await conn.fetchval("SELECT title FROM orders WHERE id = $1", row["order_id"])
    await outbox.enqueue(
        conn,
        row["user_id"],
        f"refund_{event}",
        f"refund:{refund_id}:{event}",
        {
            "order_id": row["order_id"],
            "refund_no": out_refund_no(refund_id),
            "title": title or "",
            "total_fen": row["amount_fen"],
            "reason": row["reason"],
            "status": "退款中" if event == "started" else "退款成功",
        },
    )
