"""Enqueue a user notification inside the caller's transaction (the outbox pattern).

The row commits or rolls back with the change it announces, so an event is never announced
without happening nor lost after it happened; ``dedupe_key`` makes a replayed event (a duplicate
payment notification, a retried job) enqueue nothing. ``pg_notify`` wakes the senders on commit.
"""

from __future__ import annotations

from typing import Any

import asyncpg

WAKE_CHANNEL = "lc_outbox"


async def enqueue(
    conn: asyncpg.Connection, user_id: int, kind: str, dedupe_key: str, payload: dict[str, Any]
) -> bool:
    """Queue ``kind`` for ``user_id``; False when this ``dedupe_key`` was queued before."""
    inserted = await conn.fetchval(
        """INSERT INTO notifications (user_id, kind, dedupe_key, payload)
           VALUES ($1, $2, $3, $4) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id""",
        user_id,
        kind,
        dedupe_key,
        payload,
    )
    if inserted is None:
        return False
    await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
    return True


async def order_event(conn: asyncpg.Connection, order_id: int, event: str) -> bool:
    """Queue ``order_<event>`` (paid, shipped, ...) for the order's buyer."""
    row = await conn.fetchrow(
        """SELECT id, user_id, status, title, total_fen, carrier, tracking_no
           FROM orders WHERE id = $1""",
        order_id,
    )
    if row is None:
        return False
    payload = {
        "order_id": row["id"],
        "status": row["status"],
        "title": row["title"],
        "total_fen": row["total_fen"],
    }
    if row["carrier"]:
        payload["carrier"] = row["carrier"]
        payload["tracking_no"] = row["tracking_no"]
    return await enqueue(
        conn, row["user_id"], f"order_{event}", f"order:{order_id}:{event}", payload
    )
