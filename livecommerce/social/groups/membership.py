"""What opening and joining a group share: the member's order at the group price, the replay of
a group order's Idempotency-Key, and the rule of one open group per offer and user
(``groups.one_open_group_per_offer``)."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce import orders
from livecommerce.config import GroupsConfig
from livecommerce.errors import Conflict


class Replay(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result


async def member_order(
    conn: asyncpg.Connection,
    *,
    user_id: int,
    goods_id: int,
    group_price_fen: int,
    idempotency_key: str,
    payment_timeout_seconds: float,
) -> dict[str, Any]:
    """A member's order: one unit of ``goods_id`` at the group price (fen), pending payment
    (``orders.create_order``). Raises Replay when ``idempotency_key`` made an order before
    (the caller answers that first result), and what ``create_order`` raises."""
    order, created = await orders.create_order(
        conn,
        user_id=user_id,
        goods_id=goods_id,
        quantity=1,
        idempotency_key=idempotency_key,
        payment_timeout_seconds=payment_timeout_seconds,
        unit_price_fen=group_price_fen,
    )
    if not created:
        raise Replay({})
    return order


async def replay(
    conn: asyncpg.Connection,
    user_id: int,
    key: str,
    *,
    offer_id: int | None = None,
    group_id: int | None = None,
) -> dict[str, Any] | None:
    """The first result of this user's Idempotency-Key, if it made a group order.

    ``offer_id`` (an open: the key must have opened a group of that offer) or ``group_id`` (a
    join: the key must have joined that group) is what the replayed request asks for.

    Raises:
        Conflict: ``idempotency_key_reused`` when the key's order was for another request.
    """
    row = await conn.fetchrow(
        """SELECT m.group_id, o.id AS order_id, g.offer_id, g.leader_id FROM orders o
           JOIN group_members m ON m.order_id = o.id JOIN groups g ON g.id = m.group_id
           WHERE o.user_id = $1 AND o.idempotency_key = $2""",
        user_id,
        key,
    )
    if row is None:
        return None
    opened = row["leader_id"] == user_id
    if (offer_id is not None and (not opened or row["offer_id"] != offer_id)) or (
        group_id is not None and (opened or row["group_id"] != group_id)
    ):
        raise Conflict(
            "Idempotency-Key was already used for another order", code="idempotency_key_reused"
        )
    return await _result(conn, user_id, row["group_id"], row["order_id"])


async def first_result(
    conn: asyncpg.Connection,
    user_id: int,
    key: str,
    *,
    offer_id: int | None = None,
    group_id: int | None = None,
) -> dict[str, Any]:
    """:func:`replay` for a key whose order was just found made before (``Replay`` raised):
    its first result. Raises Conflict ``idempotency_key_reused`` when the key made another
    order (not a group order, or another request's)."""
    again = await replay(conn, user_id, key, offer_id=offer_id, group_id=group_id)
    if again is None:
        raise Conflict(
            "Idempotency-Key was already used for another order", code="idempotency_key_reused"
        )
    return again


async def _result(
    conn: asyncpg.Connection, user_id: int, group_id: int, order_id: int
) -> dict[str, Any]:
    return {
        "group_id": group_id,
        "order": await orders.get_order(conn, user_id, order_id),
    }


async def one_open_group_rule(
    conn: asyncpg.Connection, cfg: GroupsConfig, user_id: int, offer_id: int
) -> None:
    if not cfg.one_open_group_per_offer:
        return
    # Serialize this user's opens/joins (transaction-scoped) so the check below cannot race.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('lc-group-user', $1))",
                       user_id)  # fmt: skip
    busy = await conn.fetchval(
        """SELECT 1 FROM group_members m JOIN groups g ON g.id = m.group_id
           WHERE m.user_id = $1 AND g.offer_id = $2 AND g.status IN ('pending', 'open')
             AND m.status IN ('pending', 'paid')""",
        user_id,
        offer_id,
    )
    if busy:
        raise Conflict("you are already in an open group of this offer", code="already_in_group")
