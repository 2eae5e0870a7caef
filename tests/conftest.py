"""Test harness: real PostgreSQL and Redis (embedded, once per run), the real app on a real port.

Set LIVECOMMERCE_TEST_DATABASE_URL and LIVECOMMERCE_TEST_REDIS_URL to use external, disposable
servers instead (the suite truncates their tables and flushes their Redis database).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.db import connect, create_pool, ensure_database
from livecommerce.embedded import EmbeddedBackends, EmbeddedUrls
from livecommerce.migrations import migrate
from tests.support import AppServer, start_app, stop_app


@pytest.fixture(scope="session")
def backend_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedUrls]:
    """URLs of the PostgreSQL and Redis the whole run shares, schema migrated."""
    db = os.environ.get("LIVECOMMERCE_TEST_DATABASE_URL")
    redis = os.environ.get("LIVECOMMERCE_TEST_REDIS_URL")
    if db and redis:
        urls = EmbeddedUrls(db, redis)
        asyncio.run(_prepare(urls.database_url))
        yield urls
        return
    emb = EmbeddedBackends(tmp_path_factory.mktemp("embedded"), fsync=False)
    with emb as urls:
        asyncio.run(_prepare(urls.database_url))
        yield urls


async def _prepare(url: str) -> None:
    await ensure_database(url)
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture
def settings(backend_urls: EmbeddedUrls) -> Settings:
    return Settings().with_backends(backend_urls.database_url, backend_urls.redis_url)


async def _reset(pool: asyncpg.Pool) -> None:
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename <> 'schema_migrations'"
    )
    if tables:
        names = ", ".join(f'"{t["tablename"]}"' for t in tables)
        await pool.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database, every table emptied first."""
    p = await create_pool(settings.database)
    await _reset(p)
    yield p
    await p.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client on the test Redis database, flushed first."""
    client = Redis.from_url(settings.redis.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def make_server(
    pool: asyncpg.Pool, redis: Redis, settings: Settings
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: start the real app on a real port (clean state), stopped after the test."""
    started: list[AppServer] = []

    async def factory(settings_override: Settings | None = None) -> AppServer:
        server = await start_app(create_app(settings_override or settings))
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        await stop_app(server)


@pytest.fixture
async def server(make_server: Callable[..., Any]) -> AppServer:
    """The real app on a real port, with clean PostgreSQL and Redis."""
    result: AppServer = await make_server()
    return result
