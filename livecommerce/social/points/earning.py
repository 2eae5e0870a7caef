"""Earning points: the daily check-in, sharing goods, and the credit for a paid order.

Each credit is a new lot (see :mod:`livecommerce.social.points.ledger`), keyed so the same
day, goods or order counts once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from livecommerce.config import PointsConfig
from livecommerce.errors import ValidationError
from livecommerce.social.points import ledger
from livecommerce.social.points.ledger import local_day, now
from livecommerce.social.points.reading import balance

ACTIONS = ("checkin", "share")


async def checkin(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, at: datetime | None = None
) -> dict[str, Any]:
    """The daily check-in: credited once per calendar day; the unique (user, day) row decides."""
    at = at or now()
    day = local_day(cfg, at)
    async with conn.transaction():
        first = await conn.fetchval(
            """INSERT INTO points_checkins (user_id, day) VALUES ($1, $2)
               ON CONFLICT DO NOTHING RETURNING 1""",
            user_id,
            day,
        )
        credited = False
        if first:
            entry = await ledger.credit(
                conn, cfg, user_id, "checkin", cfg.checkin_points, f"checkin:{day}", at
            )
            credited = entry is not None
    return await _result(conn, cfg, user_id, "checkin", credited, cfg.checkin_points, at)


async def share(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    goods_id: int,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Sharing goods: each goods once a day, at most ``share_daily_cap`` credits a day."""
    at = at or now()
    day = local_day(cfg, at)
    reason = None
    async with conn.transaction():
        if not await conn.fetchval(
            "SELECT 1 FROM goods WHERE id = $1 AND status <> 'draft'", goods_id
        ):
            raise ValidationError("goods_id", "no such goods")
        # The account lock serializes the cap check.
        await ledger.open_account(conn, cfg, user_id, at)
        key = f"share:{day}:{goods_id}"
        shares = await conn.fetchval(
            """SELECT count(*) FROM points_entries
               WHERE user_id = $1 AND day = $2 AND kind = 'share'""",
            user_id,
            day,
        )
        if await ledger.seen(conn, user_id, key):
            reason = "already_shared"
        elif shares >= cfg.share_daily_cap:
            reason = "daily_cap"
        else:
            await ledger.credit(conn, cfg, user_id, "share", cfg.share_points, key, at)
    result = await _result(conn, cfg, user_id, "share", reason is None, cfg.share_points, at)
    if reason:
        result["reason"] = reason
    return result


async def _result(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    action: str,
    credited: bool,
    points: int,
    at: datetime,
) -> dict[str, Any]:
    return {
        "action": action,
        "credited": credited,
        "points": points if credited else 0,
        "day": local_day(cfg, at).isoformat(),
        "balance": await balance(conn, user_id, at),
    }


def purchase_points(cfg: PointsConfig, total_fen: int) -> int:
    return (total_fen // 100) * cfg.purchase_points_per_yuan


async def credit_purchase(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    order_id: int,
    total_fen: int,
    at: datetime | None = None,
) -> int:
    """Points for a paid order (once per order); the points credited."""
    amount = purchase_points(cfg, total_fen)
    if amount <= 0:
        return 0
    entry = await ledger.credit(
        conn, cfg, user_id, "purchase", amount, ledger.purchase_key(order_id), at or now(),
        order_id=order_id,
    )  # fmt: skip
    return amount if entry is not None else 0
