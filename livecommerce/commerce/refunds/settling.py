"""A refund's states: moved as WeChat Pay reports them, closed (and what follows), noticed.

:func:`set_state` applies PROCESSING, SUCCESS and ABNORMAL; :func:`close` applies CLOSED with
the order, the re-issue and the points it involves; :func:`_notice` queues the buyer's notices.
The model and the state diagram are in the package doc (:mod:`livecommerce.commerce.refunds`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from livecommerce.commerce.refunds.reading import WAKE_CHANNEL, out_refund_no
from livecommerce.notify import outbox
from livecommerce.social.flash_orders import is_flash_order

FINAL = ("success", "abnormal", "closed")
# The orders a host's decision refunded: a closed refund sends them back (see the package doc).
HOST_DECIDED = ("goodwill", "after_sale")
# Why a closed / abnormal refund did not pay the buyer (its last_error).
CLOSED_NOTE = (
    "CLOSED by WeChat Pay: the buyer was not paid back (WeChat closes a refund left processing "
    "7 days without enough merchant balance); a new refund is needed"
)
ABNORMAL_NOTE = (
    "ABNORMAL at WeChat Pay: the buyer's account or card refused the money; settle it by hand "
    "in the merchant platform (Transactions > Refunds) or with apply-abnormal-refund"
)

# The states each state may be entered from (abnormal is final for our worker, but WeChat may
# still report the outcome of the merchant's manual handling).
_FROM = {
    "processing": ("pending",),
    "success": ("pending", "processing", "abnormal"),
    "abnormal": ("pending", "processing"),
    "closed": ("pending", "processing", "abnormal"),
}


async def set_state(
    conn: asyncpg.Connection, refund_id: int, status: str, wechat_refund_id: str | None
) -> bool:
    """Move a refund to ``status`` (processing, success or abnormal) once; True when it moved.

    Moving to ``processing`` queues the buyer's ``refund_started`` notice, ``success`` their
    ``refund_succeeded`` one (each once per refund, whatever delivered the news). ``closed``
    goes through :func:`close` (the order and points are involved).
    """
    if status == "closed":
        return await close(conn, refund_id, wechat_refund_id) is not None
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE refunds SET status = $2, refund_id = COALESCE($3, refund_id),
                      updated_at = now(), last_error = $6,
                      finished_at = CASE WHEN $2 = ANY($4::text[]) THEN now() END
               WHERE id = $1 AND status = ANY($5::text[])
               RETURNING user_id, order_id, amount_fen, reason""",
            refund_id,
            status,
            wechat_refund_id,
            list(FINAL),
            list(_FROM[status]),
            ABNORMAL_NOTE if status == "abnormal" else None,
        )
        if row is None:
            return False
        if status in ("processing", "success"):
            await _notice(conn, refund_id, row, "started")
        if status == "success":
            await _notice(conn, refund_id, row, "succeeded")
    return True


@dataclass(frozen=True, slots=True)
class Closed:
    """What closing a refund did (for the log line and the caller)."""

    refund_id: int
    order_id: int
    amount_fen: int
    # "order_back": the order went back to ``order_status``; "reissued": ``reissue_id`` asks
    # again; "host_decides": nothing automatic (a partial refund of an order still paid).
    action: str
    order_status: str
    reissue_id: int | None = None
    stock_retaken: bool | None = None

    def describe(self) -> str:
        head = (
            f"refund {self.refund_id} ({out_refund_no(self.refund_id)}, {self.amount_fen} fen) "
            f"of order {self.order_id} CLOSED by WeChat Pay: the buyer was NOT paid back; "
        )
        if self.action == "reissued":
            return head + f"re-issued as refund {self.reissue_id} (top up the merchant balance)"
        if self.action == "order_back":
            stock = " (its stock could not be taken again)" if self.stock_retaken is False else ""
            return head + f"order back to {self.order_status}{stock}: the host can refund it again"
        return head + f"order stays {self.order_status}: the host can refund it again"


async def close(
    conn: asyncpg.Connection,
    refund_id: int,
    wechat_refund_id: str | None,
    *,
    reissue_delay: Callable[[int], float] = lambda closed_before: 0.0,
) -> Closed | None:
    """WeChat Pay closed the refund: record it and what follows (package doc), in one
    transaction; None when it was not open (a replayed notification, a racing query, a refund
    already final), and then nothing changes.

    ``reissue_delay(n)``: seconds before a re-issue is requested, ``n`` = the closed refunds of
    the payment before this one (the refund worker passes its backoff, so refunds WeChat keeps
    closing are not asked again in a tight loop).
    """
    async with conn.transaction():
        ref = await conn.fetchrow(
            "SELECT order_id, transaction_id FROM refunds WHERE id = $1", refund_id
        )
        if ref is None:
            return None
        # Lock order: order row, then payment row (as goodwill and after-sales take them),
        # then the refund row.
        order = await conn.fetchrow(
            """SELECT status, transaction_id, cancel_reason, shipped_at, completed_at, goods_id,
                      quantity, stock_held FROM orders WHERE id = $1 FOR UPDATE""",
            ref["order_id"],
        )
        paid = await conn.fetchval(
            "SELECT amount_fen FROM payments WHERE transaction_id = $1 FOR UPDATE",
            ref["transaction_id"],
        )
        row = await conn.fetchrow(
            """UPDATE refunds SET status = 'closed', refund_id = COALESCE($2, refund_id),
                      updated_at = now(), finished_at = now(), last_error = $3
               WHERE id = $1 AND status = ANY($4::text[])
               RETURNING user_id, order_id, transaction_id, amount_fen, payment_fen, reason""",
            refund_id,
            wechat_refund_id,
            CLOSED_NOTE,
            list(_FROM["closed"]),
        )
        if row is None:
            return None
        live = await conn.fetchval(
            """SELECT COALESCE(sum(amount_fen), 0) FROM refunds
               WHERE transaction_id = $1 AND status <> 'closed'""",
            row["transaction_id"],
        )
        own = row["transaction_id"] == order["transaction_id"]
        refunded = order["status"] == "refunded"
        result = Closed(refund_id, row["order_id"], row["amount_fen"], "host_decides",
                        order["status"])  # fmt: skip
        host_decided = (
            order["cancel_reason"] in HOST_DECIDED
            and not await _group_failed(conn, row["order_id"])
            # A flash-sale order's refund gives its unit back to the sale (maybe sold again by
            # now): the order cannot go back without overselling, so its refund is owed.
            and not await is_flash_order(conn, row["order_id"])
        )
        if own and refunded and host_decided:
            if live < paid:
                result = await _order_back(conn, refund_id, row, order)
        elif (refunded or not own) and live < paid:
            # Owed whatever the host decides: the order was refunded by the system (a failed
            # group, a late payment), its flash-sale unit was released, or the payment is a
            # second one.
            result = await _reissue(conn, refund_id, row, paid - live, reissue_delay)
        await _notice(conn, refund_id, row, "closed", {"outcome": result.action})
    return result


async def _group_failed(conn: asyncpg.Connection, order_id: int) -> bool:
    """A group order whose group failed: its refund is owed whatever the host decided."""
    return bool(
        await conn.fetchval(
            """SELECT 1 FROM group_members m JOIN groups g ON g.id = m.group_id
               WHERE m.order_id = $1 AND g.status = 'failed'""",
            order_id,
        )
    )


async def _order_back(
    conn: asyncpg.Connection, refund_id: int, row: asyncpg.Record, order: asyncpg.Record
) -> Closed:
    """refunded -> where it was before (its timestamps tell: completed, shipped or paid)."""
    status = "completed" if order["completed_at"] else "shipped" if order["shipped_at"] else "paid"
    await conn.execute(
        """UPDATE orders SET status = $2, refunded_at = NULL, cancel_reason = NULL,
                  updated_at = now() WHERE id = $1 AND status = 'refunded'""",
        row["order_id"],
        status,
    )
    retaken = None
    if status == "paid" and not order["stock_held"]:
        # Approving an after-sales request of an unshipped order gave its stock back: the
        # order is to ship again, so it takes it again if it is still there (never oversold).
        retaken = bool(
            await conn.fetchval(
                "UPDATE goods SET stock = stock - $2 WHERE id = $1 AND stock >= $2 RETURNING 1",
                order["goods_id"],
                order["quantity"],
            )
        )
        if retaken:
            await conn.execute("UPDATE orders SET stock_held = true WHERE id = $1", row["order_id"])
    return Closed(refund_id, row["order_id"], row["amount_fen"], "order_back", status,
                  stock_retaken=retaken)  # fmt: skip


async def _reissue(
    conn: asyncpg.Connection,
    refund_id: int,
    row: asyncpg.Record,
    left: int,
    delay: Callable[[int], float],
) -> Closed:
    """A new refund row for what the closed one did not pay (a new out_refund_no)."""
    closed_before = await conn.fetchval(
        "SELECT count(*) FROM refunds WHERE transaction_id = $1 AND status = 'closed' AND id <> $2",
        row["transaction_id"],
        refund_id,
    )
    new_id = await conn.fetchval(
        """INSERT INTO refunds (order_id, user_id, transaction_id, amount_fen, payment_fen,
                                reason, source_key, reissue_of, next_attempt_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
           ON CONFLICT (source_key) DO NOTHING RETURNING id""",
        row["order_id"],
        row["user_id"],
        row["transaction_id"],
        min(row["amount_fen"], left),
        row["payment_fen"],
        row["reason"],
        f"reissue:{refund_id}",
        refund_id,
        float(delay(int(closed_before))),
    )
    await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
    order_status = await conn.fetchval("SELECT status FROM orders WHERE id = $1", row["order_id"])
    return Closed(refund_id, row["order_id"], row["amount_fen"], "reissued", order_status,
                  reissue_id=new_id)  # fmt: skip


_STATUS_TEXT = {"started": "退款中", "succeeded": "退款成功", "closed": "退款关闭"}


async def _notice(
    conn: asyncpg.Connection,
    refund_id: int,
    row: asyncpg.Record,
    event: str,
    extra: dict[str, Any] | None = None,
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
            "status": _STATUS_TEXT[event],
            **(extra or {}),
        },
    )
