"""Reading the ledger: the spendable balance, lots expiring soon, a page of history.

Reads take no lock: the balance is computed from the lots not expired at ``at`` (so it is
right even before the expiry job has retired them), not read from ``points_accounts``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from livecommerce.errors import NotFound
from livecommerce.social.points.ledger import now

MAX_PAGE = 50


def entry_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "delta": row["delta"],
        "balance_after": row["balance_after"],
        "day": row["day"].isoformat(),
        "order_id": row["order_id"],
        "shortfall": row["shortfall"],
        "created_at": row["created_at"].isoformat(),
    }


async def balance(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, at: datetime | None = None
) -> int:
    """Spendable points: the remaining points of lots not expired at ``at``."""
    value = await conn.fetchval(
        """SELECT coalesce(sum(remaining), 0) FROM points_lots
           WHERE user_id = $1 AND remaining > 0 AND expires_at > $2""",
        user_id,
        at or now(),
    )
    return int(value)


async def expiring(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    within: timedelta,
    at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Lots with points left that expire within ``within`` of ``at``, soonest first."""
    at = at or now()
    rows = await conn.fetch(
        """SELECT id, remaining, expires_at FROM points_lots
           WHERE user_id = $1 AND remaining > 0 AND expires_at > $2 AND expires_at <= $3
           ORDER BY expires_at, id LIMIT 100""",
        user_id,
        at,
        at + within,
    )
    return [
        {"lot_id": r["id"], "points": r["remaining"], "expires_at": r["expires_at"].isoformat()}
        for r in rows
    ]


async def history(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    *,
    limit: int,
    after_id: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the user's ledger entries, newest first (keyset on id)."""
    rows = await conn.fetch(
        """SELECT id, kind, delta, balance_after, day, order_id, shortfall, created_at
           FROM points_entries WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
           ORDER BY id DESC LIMIT $3""",
        user_id,
        after_id,
        limit + 1,
    )
    items = [entry_json(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


async def require_user(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> None:
    if not await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
        raise NotFound("no such user")
