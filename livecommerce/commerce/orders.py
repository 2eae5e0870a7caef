"""Orders: creation with atomic stock reservation, the state machine, and auto-cancel.

States and who moves them (every move is one conditional ``UPDATE ... WHERE status = <from>``;
0 rows means "not in that state" and becomes 404 or 409, never a silent double move)::

    pending_payment --pay notification--> paid --host ships--> shipped --buyer confirms--> completed
                                                    (needs the order's shipping address)
         |  buyer cancels / payment timeout                 (a late payment re-takes stock:
         v                                                   cancelled -> paid, or if sold out
     cancelled ----------- late payment, stock gone -------> refunded)

    paid | shipped | completed --host refunds all / approves after-sales--> refunded
    refunded --WeChat Pay closed that refund (not paid back)--> back where it was
                                                          (refunds.close; host-decided only)

Stock: an order holds ``quantity`` units from creation (``UPDATE goods SET stock = stock - q
WHERE stock >= q``: never negative, never oversold) until it is cancelled, which gives them back.
Lock order is always order row, then goods row (payments, cancels, the reaper) or goods row
alone (create), so these paths cannot deadlock each other.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce import merchant_no, refunds
from livecommerce.errors import Conflict, NotFound, ValidationError
from livecommerce.notify import outbox

STATUSES = ("pending_payment", "paid", "shipped", "completed", "cancelled", "refunded")
MAX_PAGE = 50
MAX_TOTAL_FEN = 2**31 - 1  # WeChat Pay v3 amount.total is a 32-bit integer of fen
COLUMNS = """id, user_id, goods_id, host_id, quantity, unit_price_fen, total_fen, title, image,
    status, carrier, tracking_no, transaction_id, cancel_reason, expires_at, paid_at, shipped_at,
    completed_at, cancelled_at, refunded_at, created_at, updated_at, address"""
_TIMES = (
    "expires_at",
    "paid_at",
    "shipped_at",
    "completed_at",
    "cancelled_at",
    "refunded_at",
    "created_at",
    "updated_at",
)


class _DuplicateKey(Exception):
    """Another request with the same idempotency key committed first."""


def out_trade_no(order_id: int) -> str:
    """The merchant order number sent to WeChat Pay (6-32 chars of [0-9A-Za-z])."""
    return merchant_no.make("LC", order_id)


def parse_out_trade_no(value: object) -> int | None:
    return merchant_no.parse("LC", value)


def to_json(row: asyncpg.Record) -> dict[str, Any]:
    out = merchant_no.row_json(row, _TIMES)
    out["out_trade_no"] = out_trade_no(row["id"])
    return out


async def _by_key(conn: asyncpg.Connection, user_id: int, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND idempotency_key = $2", user_id, key
    )
    return row


async def replayed(
    conn: asyncpg.Connection, user_id: int, key: str, goods_id: int, quantity: int
) -> dict[str, Any] | None:
    """The user's order already made with this Idempotency-Key, if any.

    Raises:
        Conflict: the key was used for another goods or quantity.
    """
    row = await _by_key(conn, user_id, key)
    return None if row is None else _same_request(row, goods_id, quantity)


def _same_request(row: asyncpg.Record, goods_id: int, quantity: int) -> dict[str, Any]:
    if row["goods_id"] != goods_id or row["quantity"] != quantity:
        raise Conflict(
            "Idempotency-Key was already used for another order", code="idempotency_key_reused"
        )
    return to_json(row)


async def create_order(
    conn: asyncpg.Connection,
    *,
    user_id: int,
    goods_id: int,
    quantity: int,
    idempotency_key: str,
    payment_timeout_seconds: float,
    unit_price_fen: int | None = None,
    discount_fen: int = 0,
    address: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Reserve stock and create a pending order; returns (order, created).

    ``unit_price_fen`` overrides the goods price (a flash-sale or group price) and
    ``discount_fen`` is taken off the total (points spent at checkout); ``address`` is the
    validated shipping address (``wx.chooseAddress`` shape), if given. Called inside the
    caller's transaction, everything here rolls back with it.

    A repeated ``idempotency_key`` of the same user returns the first order (created False),
    even when both requests race: the loser's transaction rolls its stock reservation back.

    Flash-sale orders are written by ``lc_flash_buy`` (migration 0008) in one statement with
    the same columns: keep the two in step.

    Raises:
        NotFound: no such goods (or a draft). Conflict: sold out, not on sale, or the key was
            used for a different goods/quantity. ValidationError: on ``quantity`` (code
            ``amount_too_large``) when the total exceeds 2^31-1 fen (WeChat Pay's limit).
    """
    existing = await _by_key(conn, user_id, idempotency_key)
    if existing is not None:
        return _same_request(existing, goods_id, quantity), False
    try:
        async with conn.transaction():
            goods = await conn.fetchrow(
                """UPDATE goods SET stock = stock - $2, updated_at = now()
                   WHERE id = $1 AND status = 'on_sale' AND stock >= $2
                   RETURNING host_id, price_fen, title, images""",
                goods_id,
                quantity,
            )
            if goods is None:
                status = await conn.fetchval("SELECT status FROM goods WHERE id = $1", goods_id)
                if status is None or status == "draft":
                    raise NotFound("no such goods")
                if status != "on_sale":
                    raise Conflict("these goods are not on sale", code="not_on_sale")
                raise Conflict("not enough stock", code="sold_out")
            unit = goods["price_fen"] if unit_price_fen is None else unit_price_fen
            if unit * quantity - discount_fen > MAX_TOTAL_FEN:
                # WeChat Pay's amount.total is an int32 of fen: such an order can never be paid.
                raise ValidationError(
                    "quantity",
                    f"the order total would exceed {MAX_TOTAL_FEN} fen, WeChat Pay's limit",
                    code="amount_too_large",
                )
            row = await conn.fetchrow(
                f"""INSERT INTO orders (user_id, goods_id, host_id, quantity, unit_price_fen,
                                        total_fen, title, image, idempotency_key, expires_at,
                                        address)
                    VALUES ($1, $2, $3, $4::int, $5::bigint, $5::bigint * $4::int - $10::bigint,
                            $6, $7, $8, now() + make_interval(secs => $9::float8), $11)
                    ON CONFLICT (user_id, idempotency_key) DO NOTHING
                    RETURNING {COLUMNS}""",
                user_id,
                goods_id,
                goods["host_id"],
                quantity,
                unit,
                goods["title"],
                goods["images"][0] if goods["images"] else "",
                idempotency_key,
                float(payment_timeout_seconds),
                discount_fen,
                address,
            )
            if row is None:
                raise _DuplicateKey
    except _DuplicateKey:
        existing = await _by_key(conn, user_id, idempotency_key)
        assert existing is not None  # the conflicting row committed before ON CONFLICT decided
        return _same_request(existing, goods_id, quantity), False
    return to_json(row), True


async def get_order(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, order_id: int
) -> dict[str, Any]:
    """The user's own order; anyone else's is NotFound (existence is not leaked)."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM orders WHERE id = $1 AND user_id = $2", order_id, user_id
    )
    if row is None:
        raise NotFound("no such order")
    return to_json(row)


async def list_orders(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    *,
    limit: int,
    after_id: int | None = None,
    status: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the user's orders, newest first (keyset on id)."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM orders
            WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
              AND ($3::text IS NULL OR status = $3)
            ORDER BY id DESC LIMIT $4""",
        user_id,
        after_id,
        status,
        limit + 1,
    )
    items = [to_json(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


async def set_address(
    conn: asyncpg.Connection, user_id: int, order_id: int, address: dict[str, Any]
) -> dict[str, Any]:
    """The buyer sets or changes the address of an order not shipped yet (pending or paid).

    Raises:
        NotFound: not the buyer's order. Conflict: shipped, completed, cancelled or refunded.
    """
    row = await conn.fetchrow(
        f"""UPDATE orders SET address = $3, updated_at = now()
            WHERE id = $1 AND user_id = $2 AND status IN ('pending_payment', 'paid')
            RETURNING {COLUMNS}""",
        order_id,
        user_id,
        address,
    )
    if row is None:
        raise await _refuse(
            conn, "id = $1 AND user_id = $2", (order_id, user_id), "change the address of"
        )
    return to_json(row)


HOST_VIEWS = ("after_sales_pending", "refunding", "refund_issues")


async def list_host_orders(
    conn: asyncpg.Connection | asyncpg.Pool,
    host_id: int,
    *,
    status: str | None,
    room_id: int | None,
    limit: int,
    after_id: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the host's orders, newest first (keyset on id).

    ``status`` is an order status (``paid`` = to ship) or ``after_sales_pending`` (an open
    after-sales request) or ``refunding`` (a refund not finished) or ``refund_issues`` (an
    abnormal refund, or a closed one no refund has followed yet); ``room_id`` keeps orders
    of goods shown in that room. Each order carries its ``refund_issues``: its closed and
    abnormal refunds (see :func:`refund_issues`).
    """
    plain = status if status not in HOST_VIEWS else None
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM orders o
            WHERE host_id = $1 AND ($2::bigint IS NULL OR id < $2)
              AND ($3::text IS NULL OR status = $3)
              AND ($4::bigint IS NULL OR EXISTS (
                    SELECT 1 FROM room_goods rg WHERE rg.room_id = $4 AND rg.goods_id = o.goods_id))
              AND (NOT $6 OR EXISTS (SELECT 1 FROM after_sales a
                                     WHERE a.order_id = o.id AND a.status = 'requested'))
              AND (NOT $7 OR EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id
                                     AND r.status IN ('pending', 'processing')))
              AND (NOT $8 OR EXISTS (
                    SELECT 1 FROM refunds r WHERE r.order_id = o.id
                    AND (r.status = 'abnormal' OR r.status = 'closed' AND NOT EXISTS (
                        SELECT 1 FROM refunds n WHERE n.order_id = o.id AND n.id > r.id))))
            ORDER BY id DESC LIMIT $5""",
        host_id,
        after_id,
        plain,
        room_id,
        limit + 1,
        status == "after_sales_pending",
        status == "refunding",
        status == "refund_issues",
    )
    items = [to_json(r) for r in rows[:limit]]
    issues = await refund_issues(conn, [o["id"] for o in items])
    for o in items:
        o["refund_issues"] = issues.get(o["id"], [])
    return items, (items[-1]["id"] if len(rows) > limit else None)


async def refund_issues(
    conn: asyncpg.Connection | asyncpg.Pool, order_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    """The closed and abnormal refunds of these orders (order id -> oldest first), each with
    ``next_refund_id``: the order's first refund made after it (a re-issue or the host's
    new refund; None: nothing has asked for that money again yet)."""
    if not order_ids:
        return {}
    rows = await conn.fetch(
        """SELECT r.id, r.order_id, r.status, r.amount_fen, r.reason, r.last_error,
                  r.finished_at,
                  (SELECT min(n.id) FROM refunds n
                   WHERE n.order_id = r.order_id AND n.id > r.id) AS next_refund_id
           FROM refunds r WHERE r.order_id = ANY($1::bigint[])
             AND r.status IN ('closed', 'abnormal')
           ORDER BY r.id""",
        order_ids,
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        item = merchant_no.row_json(r, ("finished_at",))
        item["out_refund_no"] = refunds.out_refund_no(r["id"])
        out.setdefault(r["order_id"], []).append(item)
    return out


async def _refuse(
    conn: asyncpg.Connection, where: str, args: tuple[Any, ...], action: str
) -> Conflict:
    """Why a conditional transition touched no row: 404 if not the caller's, else 409."""
    status = await conn.fetchval(f"SELECT status FROM orders WHERE {where}", *args)
    if status is None:
        raise NotFound("no such order")
    return Conflict(f"cannot {action} an order that is {status}", code="illegal_transition")


async def cancel_order(conn: asyncpg.Connection, user_id: int, order_id: int) -> dict[str, Any]:
    """The buyer cancels an unpaid order; its stock is released in the same transaction.

    The answer also carries ``prepaid``: whether a WeChat Pay order was made for it (to close).
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE orders SET status = 'cancelled', cancel_reason = 'buyer',
                       cancelled_at = now(), stock_held = false, updated_at = now()
                WHERE id = $1 AND user_id = $2 AND status = 'pending_payment'
                RETURNING {COLUMNS}, prepay_id IS NOT NULL AS prepaid""",
            order_id,
            user_id,
        )
        if row is None:
            raise await _refuse(conn, "id = $1 AND user_id = $2", (order_id, user_id), "cancel")
        await conn.execute(
            "UPDATE goods SET stock = stock + $2 WHERE id = $1", row["goods_id"], row["quantity"]
        )
    return to_json(row)


async def confirm_received(conn: asyncpg.Connection, user_id: int, order_id: int) -> dict[str, Any]:
    """The buyer confirms receipt: shipped -> completed."""
    row = await conn.fetchrow(
        f"""UPDATE orders SET status = 'completed', completed_at = now(), updated_at = now()
            WHERE id = $1 AND user_id = $2 AND status = 'shipped' RETURNING {COLUMNS}""",
        order_id,
        user_id,
    )
    if row is None:
        raise await _refuse(conn, "id = $1 AND user_id = $2", (order_id, user_id), "complete")
    return to_json(row)


async def ship_order(
    conn: asyncpg.Connection, host_id: int, order_id: int, carrier: str, tracking_no: str
) -> dict[str, Any]:
    """The host ships a paid order of its goods: paid -> shipped. Other hosts' orders: 404.

    Every order is of physical goods, so it ships only with a shipping address: a paid order
    without one is Conflict ``address_required`` (the buyer adds it with
    :func:`set_address`, until the order ships). The buyer's ``order_shipped`` notification is
    queued in the same transaction.
    """
    async with conn.transaction():
        return await _ship(conn, host_id, order_id, carrier, tracking_no)


async def _ship(
    conn: asyncpg.Connection, host_id: int, order_id: int, carrier: str, tracking_no: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""UPDATE orders SET status = 'shipped', carrier = $3, tracking_no = $4,
                   shipped_at = now(), updated_at = now()
            WHERE id = $1 AND host_id = $2 AND status = 'paid' AND address IS NOT NULL
            RETURNING {COLUMNS}""",
        order_id,
        host_id,
        carrier,
        tracking_no,
    )
    if row is None:
        if await conn.fetchval(
            """SELECT 1 FROM orders WHERE id = $1 AND host_id = $2 AND status = 'paid'
               AND address IS NULL""",
            order_id,
            host_id,
        ):
            raise Conflict(
                "the buyer has not given a shipping address yet (PUT /api/orders/{id}/address)",
                code="address_required",
            )
        raise await _refuse(conn, "id = $1 AND host_id = $2", (order_id, host_id), "ship")
    await outbox.order_event(conn, order_id, "shipped")
    return to_json(row)


async def expire_due(
    conn: asyncpg.Connection, batch: int, *, prepaid_grace_seconds: float | None = None
) -> list[int]:
    """Cancel up to ``batch`` unpaid orders past their deadline and release their stock.

    With ``prepaid_grace_seconds``, an order that has a WeChat Pay prepay is left alone until
    that long after its deadline: the reaper first asks WeChat Pay about it
    (:mod:`commerce.paychecks`), and cancels it here only when WeChat could not be asked.

    ``FOR UPDATE SKIP LOCKED`` lets several nodes sweep at once without waiting on each other
    or cancelling an order twice; an order locked by an arriving payment is skipped (the payment
    decides it). Goods are restocked in id order so two sweepers cannot deadlock.
    """
    async with conn.transaction():
        rows = await conn.fetch(
            """WITH due AS (
                   SELECT id FROM orders
                   WHERE status = 'pending_payment' AND expires_at <= now()
                     AND ($2::float8 IS NULL OR prepay_id IS NULL
                          OR expires_at <= now() - make_interval(secs => $2::float8))
                   ORDER BY expires_at LIMIT $1
                   FOR UPDATE SKIP LOCKED)
               UPDATE orders o SET status = 'cancelled', cancel_reason = 'payment_timeout',
                      cancelled_at = now(), stock_held = false, updated_at = now()
               FROM due WHERE o.id = due.id
               RETURNING o.id, o.goods_id, o.quantity""",
            batch,
            prepaid_grace_seconds,
        )
        release: dict[int, int] = {}
        for r in rows:
            release[r["goods_id"]] = release.get(r["goods_id"], 0) + r["quantity"]
        for goods_id in sorted(release):
            await conn.execute(
                "UPDATE goods SET stock = stock + $2 WHERE id = $1", goods_id, release[goods_id]
            )
    return [r["id"] for r in rows]


async def seconds_to_next_deadline(
    conn: asyncpg.Connection, retry_seconds: float = 0.0
) -> float | None:
    """Seconds until the earliest unpaid order expires (<= 0: due now); None if none pending.

    An order whose WeChat Pay query failed (``pay_checked_at``) is next due ``retry_seconds``
    after that check, not at its (past) deadline: the reaper does not spin on it.
    """
    value = await conn.fetchval(
        """SELECT EXTRACT(EPOCH FROM min(
                      CASE WHEN pay_checked_at IS NULL THEN expires_at
                           ELSE GREATEST(expires_at,
                                         pay_checked_at + make_interval(secs => $1::float8))
                      END) - now())::float8
           FROM orders WHERE status = 'pending_payment'""",
        float(retry_seconds),
    )
    return None if value is None else float(value)
