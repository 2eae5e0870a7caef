"""A purchase attempt: the Redis take, then the order written in PostgreSQL by ``lc_flash_buy``;
a replayed Idempotency-Key answers its first order, and a failure returns the claim.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from livecommerce.commerce import orders
from livecommerce.config import FlashSaleConfig
from livecommerce.errors import Conflict, NotFound
from livecommerce.social.flashsale.loading import reconcile
from livecommerce.social.flashsale.stock import FlashStock

log = logging.getLogger("livecommerce.flashsale")
REFUSALS = {
    "not_started": "the flash sale has not started yet",
    "ended": "the flash sale has ended",
    "sold_out": "the flash sale is sold out",
    "limit_reached": "you have reached this sale's per-user limit",
}


class _Replay(Exception):
    """The key already has an order: nothing was written; answer that order."""

    def __init__(self, order: dict[str, Any]) -> None:
        self.order = order


def claim_id(user_id: int, idempotency_key: str) -> str:
    return f"{user_id}/{idempotency_key}"


@dataclass(frozen=True, slots=True)
class Purchase:
    order: dict[str, Any]
    created: bool
    stock_left: int | None  # after this purchase (None on a replay)


async def _existing_order(
    pool: asyncpg.Connection | asyncpg.Pool, sale_id: int, user_id: int, key: str
) -> dict[str, Any] | None:
    order_id = await pool.fetchval(
        """SELECT o.id FROM orders o JOIN flash_sale_orders f ON f.order_id = o.id
           WHERE o.user_id = $1 AND o.idempotency_key = $2 AND f.sale_id = $3""",
        user_id,
        key,
        sale_id,
    )
    if order_id is None:
        return None
    return await orders.get_order(pool, user_id, order_id)


async def buy(
    pool: asyncpg.Pool,
    stock: FlashStock,
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    idempotency_key: str,
) -> Purchase:
    """One purchase attempt. A replayed Idempotency-Key returns the first order (not created).

    Raises:
        NotFound: no such sale. Conflict: ``not_started``, ``ended``, ``sold_out``,
            ``limit_reached``, ``in_progress`` (the same key is being processed) or an
            order-flow conflict (goods sold out or off sale).
    """
    claim = claim_id(user_id, idempotency_key)
    take = await stock.take(sale_id, user_id, quantity, claim)
    if take.code == "not_loaded":
        await reconcile(pool, stock, sale_id)
        take = await stock.take(sale_id, user_id, quantity, claim)
    if take.code in ("duplicate", "ended"):
        # A retry of a lost answer may come after the end (the window is checked first, and
        # the claim may be gone): its order, not 409 ended.
        existing = await _existing_order(pool, sale_id, user_id, idempotency_key)
        if existing is None and take.code == "ended":
            raise Conflict(REFUSALS["ended"], code="ended")
        if existing is None:
            raise Conflict(
                "a purchase with this Idempotency-Key is in progress", code="in_progress"
            )
        if existing["quantity"] != quantity:
            raise Conflict(
                "Idempotency-Key was already used for another order",
                code="idempotency_key_reused",
            )
        return Purchase(existing, False, None)
    if take.code != "ok":
        if take.code in REFUSALS:
            raise Conflict(REFUSALS[take.code], code=take.code)
        raise Conflict("the flash sale is unavailable", code="unavailable")  # not_loaded twice
    try:
        async with pool.acquire() as conn:
            order = await _persist(
                conn, stock.cfg, sale_id, user_id, quantity, idempotency_key, claim
            )
    except _Replay as replay:
        await _give_back(stock, sale_id, claim)
        return Purchase(replay.order, False, None)
    except BaseException:
        # Anything — a guard refusing, PostgreSQL down, the request cancelled — returns stock.
        await _give_back(stock, sale_id, claim)
        raise
    return Purchase(order, True, take.stock_left)


async def _give_back(stock: FlashStock, sale_id: int, claim: str) -> None:
    try:
        await asyncio.shield(stock.give_back(sale_id, claim))
    except Exception:  # Redis down: the claim stays until a reconcile; PostgreSQL is right.
        log.exception("flash sale %d: could not return claim %s", sale_id, claim)


async def _persist(
    conn: asyncpg.Connection,
    cfg: FlashSaleConfig,
    sale_id: int,
    user_id: int,
    quantity: int,
    key: str,
    claim: str,
) -> dict[str, Any]:
    """Write the order in one statement (``lc_flash_buy``, migration 0008), in autocommit.

    Every winner updates the same goods and sale rows; as one statement their locks are held
    only while PostgreSQL finishes the function and commits, not across round trips to this
    (busy) event loop, so a rush's winners do not queue behind each other's network waits.
    """
    try:
        row = await conn.fetchrow(
            "SELECT order_id, created FROM lc_flash_buy($1, $2, $3, $4, $5, $6)",
            sale_id,
            user_id,
            quantity,
            key,
            claim,
            float(cfg.payment_timeout_seconds),
        )
    except asyncpg.RaiseError as exc:
        code = exc.message
        if code == "replay":  # the same key committed meanwhile (by a racing request)
            raise _Replay(await _replayed(conn, sale_id, user_id, quantity, key)) from None
        if code in REFUSALS:
            raise Conflict(REFUSALS[code], code=code) from None
        if code == "not_on_sale":
            raise Conflict("these goods are not on sale", code="not_on_sale") from None
        if code == "goods_not_found":
            raise NotFound("no such goods") from None
        raise
    assert row is not None
    if not row["created"]:
        raise _Replay(await _replayed(conn, sale_id, user_id, quantity, key))
    return await orders.get_order(conn, user_id, row["order_id"])


async def _replayed(
    conn: asyncpg.Connection, sale_id: int, user_id: int, quantity: int, key: str
) -> dict[str, Any]:
    # The key's order must be a purchase of this sale: a plain order of the same goods (or
    # another sale's) made with it is not this purchase's answer.
    order = await _existing_order(conn, sale_id, user_id, key)
    if order is None or order["quantity"] != quantity:
        raise Conflict(
            "Idempotency-Key was already used for another order", code="idempotency_key_reused"
        )
    return order
