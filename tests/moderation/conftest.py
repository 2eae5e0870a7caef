"""Moderation fixtures: the live-room world of tests/realtime."""

from __future__ import annotations

import asyncpg
import pytest

from tests.realtime.conftest import World, make_world


@pytest.fixture
async def world(pool: asyncpg.Pool) -> World:
    return await make_world(pool)
