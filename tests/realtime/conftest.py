"""Live-room fixtures: a host with a token, goods, and a live room with the goods attached."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import pytest

from livecommerce.auth.tokens import anonymous_subject, issue_token
from livecommerce.config import DEV_SECRET


@dataclass
class World:
    host_id: int
    host_token: str
    other_host_token: str
    room_id: int
    goods_ids: list[int]

    def viewer_token(self) -> str:
        return issue_token(DEV_SECRET, "viewer", anonymous_subject(), 3600)

    def host_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.host_token}"}


async def make_world(pool: asyncpg.Pool, state: str = "live") -> World:
    host_id = await pool.fetchval(
        "INSERT INTO hosts (name) VALUES ('h-' || gen_random_uuid()) RETURNING id"
    )
    other = await pool.fetchval(
        "INSERT INTO hosts (name) VALUES ('o-' || gen_random_uuid()) RETURNING id"
    )
    goods = [
        await pool.fetchval(
            "INSERT INTO goods (host_id, title, price_fen, stock, images) VALUES ($1, $2, $3, 100, $4) RETURNING id",
            host_id,
            f"Goods {i}",
            1000 + i,
            [f"https://img.example/{i}.jpg"],
        )
        for i in range(3)
    ]
    room_id = await pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state, started_at) VALUES ($1, 'Test room', $2,"
        " CASE WHEN $2 = 'live' THEN now() END) RETURNING id",
        host_id,
        state,
    )
    await pool.executemany(
        "INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, $3)",
        [(room_id, g, i) for i, g in enumerate(goods)],
    )
    return World(
        host_id=host_id,
        host_token=issue_token(DEV_SECRET, "host", host_id, 3600),
        other_host_token=issue_token(DEV_SECRET, "host", other, 3600),
        room_id=room_id,
        goods_ids=goods,
    )


@pytest.fixture
async def world(pool: asyncpg.Pool) -> World:
    return await make_world(pool)
