"""Canned replies of a shop (title + text), kept by the host and the shop's agents and inserted
into a reply from the agent workspace. No aiohttp here; another shop's reply is NotFound."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound

COLUMNS = "id, title, body, created_at, updated_at"
MAX_PER_SHOP = 200


async def list_for(pool: asyncpg.Pool, host_id: int) -> list[dict[str, Any]]:
    """The shop's canned replies, by title then id."""
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM support_canned WHERE host_id = $1 ORDER BY title, id", host_id
    )
    return [dict(r) for r in rows]


async def create(pool: asyncpg.Pool, host_id: int, title: str, body: str) -> dict[str, Any]:
    """Add one (Conflict ``too_many_canned`` past ``MAX_PER_SHOP``)."""
    row = await pool.fetchrow(
        f"""INSERT INTO support_canned (host_id, title, body)
            SELECT $1, $2, $3 WHERE (SELECT count(*) FROM support_canned WHERE host_id = $1) < $4
            RETURNING {COLUMNS}""",
        host_id, title, body, MAX_PER_SHOP,
    )  # fmt: skip
    if row is None:
        raise Conflict(
            f"a shop keeps at most {MAX_PER_SHOP} canned replies", code="too_many_canned"
        )
    return dict(row)


async def update(
    pool: asyncpg.Pool, host_id: int, canned_id: int, title: str, body: str
) -> dict[str, Any]:
    row = await pool.fetchrow(
        f"""UPDATE support_canned SET title = $3, body = $4, updated_at = now()
            WHERE id = $1 AND host_id = $2 RETURNING {COLUMNS}""",
        canned_id, host_id, title, body,
    )  # fmt: skip
    if row is None:
        raise NotFound("no such canned reply", code="canned_not_found")
    return dict(row)


async def delete(pool: asyncpg.Pool, host_id: int, canned_id: int) -> None:
    done = await pool.fetchval(
        "DELETE FROM support_canned WHERE id = $1 AND host_id = $2 RETURNING id", canned_id, host_id
    )
    if done is None:
        raise NotFound("no such canned reply", code="canned_not_found")
