"""Opening a group: the leader's order at the group price; the group is joinable once it is paid."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.config import GroupsConfig
from livecommerce.errors import NotFound
from livecommerce.social.groups import membership


async def open_group(
    conn: asyncpg.Connection,
    cfg: GroupsConfig,
    *,
    user_id: int,
    offer_id: int,
    idempotency_key: str,
    payment_timeout_seconds: float,
) -> tuple[dict[str, Any], bool]:
    """Open a group: the leader's order at the group price; joinable once it is paid.

    Returns ({group_id, order}, created); a replayed key returns the first result.
    """
    existing = await membership.replay(conn, user_id, idempotency_key, offer_id=offer_id)
    if existing is not None:
        return existing, False
    try:
        async with conn.transaction():
            offer = await conn.fetchrow(
                "SELECT goods_id, group_price_fen, size FROM group_offers WHERE id = $1 AND active",
                offer_id,
            )
            if offer is None:
                raise NotFound("no such group offer", code="offer_not_found")
            await membership.one_open_group_rule(conn, cfg, user_id, offer_id)
            group_id = await conn.fetchval(
                "INSERT INTO groups (offer_id, leader_id, size) VALUES ($1, $2, $3) RETURNING id",
                offer_id,
                user_id,
                offer["size"],
            )
            order = await membership.member_order(
                conn,
                user_id=user_id,
                goods_id=offer["goods_id"],
                group_price_fen=offer["group_price_fen"],
                idempotency_key=idempotency_key,
                payment_timeout_seconds=payment_timeout_seconds,
            )
            await conn.execute(
                "INSERT INTO group_members (group_id, user_id, order_id) VALUES ($1, $2, $3)",
                group_id,
                user_id,
                order["id"],
            )
    except membership.Replay:
        first = await membership.first_result(conn, user_id, idempotency_key, offer_id=offer_id)
        return first, False
    return {"group_id": group_id, "order": order}, True
