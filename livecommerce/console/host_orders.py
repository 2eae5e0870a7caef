"""The host's orders for the console: keyset pages, newest first, optionally one status."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce.orders import COLUMNS, to_json


async def list_host_orders(
    conn: asyncpg.Connection | asyncpg.Pool,
    host_id: int,
    *,
    limit: int,
    after_id: int | None = None,
    status: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of orders of the host's goods and the last id when there are more."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM orders
            WHERE host_id = $1 AND ($2::bigint IS NULL OR id < $2)
              AND ($3::text IS NULL OR status = $3)
            ORDER BY id DESC LIMIT $4""",
        host_id,
        after_id,
        status,
        limit + 1,
    )
    items = [to_json(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)
