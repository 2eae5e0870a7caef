"""A refund row: its columns, its merchant number (``out_refund_no``), its JSON, an order's refunds.

``WAKE_CHANNEL`` is the PostgreSQL channel that wakes the refund worker when a refund row is
added. The model is described in the package doc (:mod:`livecommerce.commerce.refunds`).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce import merchant_no
from livecommerce.errors import NotFound

COLUMNS = """id, order_id, transaction_id, amount_fen, payment_fen, reason, status, refund_id,
    attempts, last_error, reissue_of, created_at, updated_at, finished_at"""
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
