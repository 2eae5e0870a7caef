"""Joining an open group: a seat taken with one conditional UPDATE, the member row and the order
at the group price, in one transaction (so a group never holds more than ``size`` members)."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.config import GroupsConfig
from livecommerce.errors import Conflict, NotFound
from livecommerce.social.groups import membership


async def join_group(
    conn: asyncpg.Connection,
    cfg: GroupsConfig,
    *,
    user_id: int,
    group_id: int,
    idempotency_key: str,
    payment_timeout_seconds: float,
) -> tuple[dict[str, Any], bool]:
    """Join an open group: take a seat, become a member, order at the group price — together.

    Raises:
        NotFound: no such group. Conflict: ``group_full``, ``group_expired``, ``group_closed``
            (succeeded, failed or cancelled), ``already_joined``, ``already_in_group`` or the
            order flow's ``sold_out``.
    """
    existing = await membership.replay(conn, user_id, idempotency_key, group_id=group_id)
    if existing is not None:
        return existing, False
    try:
        async with conn.transaction():
            offer_id = await conn.fetchval("SELECT offer_id FROM groups WHERE id = $1", group_id)
            if offer_id is None:
                raise NotFound("no such group", code="group_not_found")
            if await conn.fetchval(
                """SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2
                   AND status IN ('pending', 'paid')""",
                group_id,
                user_id,
            ):
                raise Conflict("you are already in this group", code="already_joined")
            await membership.one_open_group_rule(conn, cfg, user_id, offer_id)
            seat = await conn.fetchrow(
                """UPDATE groups g SET seats = seats + 1 FROM group_offers o
                   WHERE g.id = $1 AND o.id = g.offer_id AND g.status = 'open'
                     AND g.expires_at > now() AND g.seats < g.size
                   RETURNING o.goods_id, o.group_price_fen""",
                group_id,
            )
            if seat is None:
                raise await _why_not_joinable(conn, group_id)
            order = await membership.member_order(
                conn,
                user_id=user_id,
                goods_id=seat["goods_id"],
                group_price_fen=seat["group_price_fen"],
                idempotency_key=idempotency_key,
                payment_timeout_seconds=payment_timeout_seconds,
            )
            member = await conn.fetchval(
                """INSERT INTO group_members AS m (group_id, user_id, order_id)
                   VALUES ($1, $2, $3)
                   ON CONFLICT (group_id, user_id) DO UPDATE
                   SET order_id = EXCLUDED.order_id, status = 'pending', joined_at = now()
                   WHERE m.status = 'cancelled' RETURNING 1""",
                group_id,
                user_id,
                order["id"],
            )
            if member is None:
                raise Conflict("you are already in this group", code="already_joined")
    except membership.Replay:
        first = await membership.first_result(conn, user_id, idempotency_key, group_id=group_id)
        return first, False
    return {"group_id": group_id, "order": order}, True


async def _why_not_joinable(conn: asyncpg.Connection, group_id: int) -> Exception:
    g = await conn.fetchrow(
        "SELECT status, seats, size, expires_at <= now() AS expired FROM groups WHERE id = $1",
        group_id,
    )
    if g is None or g["status"] == "pending":
        return NotFound("no such group", code="group_not_found")
    if g["status"] == "open" and g["expired"]:
        return Conflict("the group's time to fill is over", code="group_expired")
    if g["status"] == "open" or g["status"] == "succeeded":
        return Conflict("the group is full", code="group_full")
    return Conflict(f"the group is {g['status']}", code="group_closed")
