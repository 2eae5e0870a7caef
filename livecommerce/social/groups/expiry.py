"""The expiry job: fail open groups past their time in batches, and when the next one is due."""

from __future__ import annotations

import asyncpg

from livecommerce.social.groups.failure import fail_group


async def expire_due(pool: asyncpg.Pool, batch: int) -> list[int]:
    """Fail open groups past their time; several nodes may run this at once (SKIP LOCKED)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT id FROM groups WHERE status = 'open' AND expires_at <= now()
               ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED""",
            batch,
        )
        for r in rows:
            await fail_group(conn, r["id"])
    return [r["id"] for r in rows]


async def seconds_to_next_deadline(conn: asyncpg.Connection | asyncpg.Pool) -> float | None:
    value = await conn.fetchval(
        """SELECT EXTRACT(EPOCH FROM min(expires_at) - now())::float8
           FROM groups WHERE status = 'open'"""
    )
    return None if value is None else float(value)
