"""Creating an order: the stock reservation, the Idempotency-Key replay, the total's limit."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce.orders.reading import COLUMNS, to_json
from livecommerce.errors import Conflict, NotFound, ValidationError

MAX_TOTAL_FEN = 2**31 - 1  # WeChat Pay v3 amount.total is a 32-bit integer of fen


class _DuplicateKey(Exception):
    """Another request with the same idempotency key committed first."""


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
