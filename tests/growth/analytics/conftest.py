"""Analytics fixtures: a live room world, tokens, and event builders."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from tests.realtime.conftest import World, make_world


@pytest.fixture
async def world(pool: asyncpg.Pool) -> World:
    """A host, three goods and a live room."""
    return await make_world(pool)


def user_headers(user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'user', user_id, 3600)}"}


def viewer_headers(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.viewer_token()}"}


def event(type_: str = "page_view", **fields: Any) -> dict[str, Any]:
    """A valid client event with a fresh id."""
    out: dict[str, Any] = {"id": str(uuid.uuid4()), "type": type_}
    out.update(fields)
    return out


async def stored_ids(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT event_id FROM analytics_events")
    return [str(r["event_id"]) for r in rows]
