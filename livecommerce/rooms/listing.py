"""Room lists: a host's own rooms (any state) or the public list of live rooms. No aiohttp."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.rooms.service import ROOM_COLUMNS, room_info


async def list_rooms(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    host_id: int | None,
    state: str | None,
    limit: int,
    after_id: int | None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of rooms, newest first (keyset on id), and the last id when there are more.

    ``host_id`` None = the public list: live rooms only (``state`` other than live finds none).
    """
    if host_id is None:
        if state not in (None, "live"):
            return [], None
        state = "live"
    rows = await conn.fetch(
        f"""SELECT {ROOM_COLUMNS} FROM live_rooms
            WHERE ($1::bigint IS NULL OR host_id = $1) AND ($2::text IS NULL OR state = $2)
              AND ($3::bigint IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4""",
        host_id,
        state,
        after_id,
        limit + 1,
    )
    items = [room_info(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)
