"""Analytics fixtures: a live room world, tokens, event builders, and the writer's own pool
with helpers for tests that drive :class:`Writer` directly (two writers = two nodes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET, Settings
from livecommerce.db import close_pool
from livecommerce.growth.analytics import partitions
from livecommerce.growth.analytics.events import Row
from livecommerce.growth.analytics.writer import EnsureDays, Writer
from livecommerce.growth.analytics.writer_pool import create_writer_pool
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


def row(event_id: uuid.UUID | None = None, *, at: datetime | None = None,
        props: str | None = None, variants: str | None = None) -> Row:  # fmt: skip
    """A client event row in ``COLUMNS`` order."""
    now = datetime.now(UTC)
    return (
        event_id or uuid.uuid4(), "bubble_click", at or now, now, "client", False, "viewer:t",
        None, 7, 3, 11, None, None, "pages/live/live", variants, props,
    )  # fmt: skip


@pytest.fixture
async def writer_pool(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """The writer's own kind of pool (4 connections), today's partition made."""
    async with pool.acquire() as conn:
        await partitions.create_partition(conn, datetime.now(UTC).date())
    p = await create_writer_pool(settings.database, 4)
    yield p
    await close_pool(p)


async def started(pool: asyncpg.Pool, **kw: object) -> Writer:
    """A running Writer on ``pool`` (small flush interval); ``kw`` as Writer takes them."""
    w = Writer(pool, max_events=100_000, flush_events=5000, flush_interval=0.005, **kw)  # type: ignore[arg-type]
    w.start()
    return w


async def counts(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many rows each of ``ids`` has in analytics_events (absent: not stored)."""
    got = await pool.fetch(
        "SELECT event_id, count(*) AS n FROM analytics_events WHERE event_id = ANY($1::uuid[])"
        " GROUP BY event_id",
        ids,
    )
    return {r["event_id"]: r["n"] for r in got}


def ensurer(pool: asyncpg.Pool, made: list[set[date]] | None = None) -> EnsureDays:
    """An ``ensure_days`` that makes the partitions (and notes the days asked for)."""

    async def ensure_days(days: set[date]) -> None:
        if made is not None:
            made.append(days)
        async with pool.acquire() as conn:
            for d in days:
                await partitions.create_partition(conn, d)

    return ensure_days
