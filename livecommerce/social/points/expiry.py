"""The expiry job: retire expired lots in batches, and when the next lot expires.

Every change retires the user's own expired lots first (under the account lock); this sweep
retires those of users who change nothing, so balances and ``expire`` entries stay current.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from livecommerce.config import PointsConfig
from livecommerce.social.points import ledger
from livecommerce.social.points.ledger import now


async def expire_due(
    pool: asyncpg.Pool, cfg: PointsConfig, batch: int, at: datetime | None = None
) -> int:
    """Retire expired lots of up to ``batch`` users; safe on several nodes (a user whose
    account is locked — by another node's sweep or a spend — is skipped: that holder retires
    them). Returns the number of users swept."""
    at = at or now()
    users = await pool.fetch(
        """SELECT DISTINCT user_id FROM points_lots
           WHERE remaining > 0 AND expires_at <= $1 LIMIT $2""",
        at,
        batch,
    )
    swept = 0
    async with pool.acquire() as conn:
        for u in users:
            async with conn.transaction():
                bal = await conn.fetchval(
                    "SELECT balance FROM points_accounts WHERE user_id = $1 FOR UPDATE SKIP LOCKED",
                    u["user_id"],
                )
                if bal is None:
                    continue
                await ledger.retire_expired(conn, cfg, u["user_id"], bal, at)
                swept += 1
    return swept


async def seconds_to_next_expiry(conn: asyncpg.Connection | asyncpg.Pool) -> float | None:
    """Seconds until the soonest lot with points left expires (negative: overdue); None: none."""
    value = await conn.fetchval(
        """SELECT EXTRACT(EPOCH FROM min(expires_at) - now())::float8
           FROM points_lots WHERE remaining > 0"""
    )
    return None if value is None else float(value)
