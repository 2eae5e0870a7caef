"""Refunds owed to buyers (migration 0010): creating them, their states, the buyer's notices.

A refund row is created in the transaction that decides the money goes back: by the
``payments_refund_required`` trigger for a payment marked ``refund_required`` (a double
payment, a late payment whose stock is gone, a failed group, a released flash-sale unit, an
approved after-sales request) or by :func:`goodwill` for a host's full or partial refund. The
refund worker (:mod:`refund_worker`) then asks WeChat Pay with the row's fixed
``out_refund_no``; notifications and queries move it::

    pending --WeChat accepted--> processing --notification / query--> success | abnormal | closed
       (transient failures: retried with exponential backoff, same out_refund_no)
    abnormal --WeChat reports it settled (after the merchant's manual handling)--> success | closed

Every state write is a conditional UPDATE from the states it may leave, so a replayed
notification or a query racing a notification applies once; the buyer's notices are outbox
rows with a dedupe key per refund and event.

**Closed** (WeChat Pay v3 ``CLOSED``: the buyer was *not* paid back — WeChat closes a refund
left processing for 7 days without enough merchant balance — and that ``out_refund_no`` is
final) is handled by :func:`close`, in one transaction: the refund stops counting as refunded
(every sum skips ``closed``), then

* an order the closed refund had left ``refunded`` by a host's decision (a goodwill refund of
  all that was left, an approved after-sales request) — not a flash-sale order, whose released
  unit may have been sold again (it would be oversold) — goes back to where it was — ``paid``,
  ``shipped`` or ``completed`` (a ``paid`` one takes its stock again if it was restocked) — so
  the host can refund it again (goodwill, or approving the buyer's new request);
* a refund the shop owes whatever the host decides (a second payment of an order, a failed
  group, a late payment whose stock is gone, a flash-sale order whose unit was released, even by
  the host's refund) is re-issued: a new
  row (new ``out_refund_no``, ``reissue_of``) that the worker requests after a backoff;
* a partial goodwill refund of an order that stays paid is only reported: the host decides;
* the buyer gets a ``refund_closed`` notice, and the order event ``refund_closed`` (migration
  0024) gives back the purchase points the refund had reversed, once.

**Abnormal** (``ABNORMAL``: the money left the merchant account but the buyer's card or account
refused it) still counts as refunded and waits for the merchant to settle it by hand in the
merchant platform (or WeChat's apply-abnormal-refund API); a later SUCCESS or CLOSED that WeChat
reports for it is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from livecommerce.commerce import merchant_no
from livecommerce.errors import Conflict, NotFound
from livecommerce.notify import outbox
from livecommerce.social.flash_orders import is_flash_order

FINAL = ("success", "abnormal", "closed")
COLUMNS = """id, order_id, transaction_id, amount_fen, payment_fen, reason, status, refund_id,
    attempts, last_error, reissue_of, created_at, updated_at, finished_at"""
_TIMES = ("created_at", "updated_at", "finished_at")
WAKE_CHANNEL = "lc_refunds"
# The orders a host's decision refunded: a closed refund sends them back (see the module doc).
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
    """WeChat Pay closed the refund: record it and what follows (module doc), in one
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
