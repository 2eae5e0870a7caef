"""Fault fixtures: a private embedded PostgreSQL + Valkey per module that tests may stop, kill
and restart (the run's shared backends are never touched), and the app served on top of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest
from redis.asyncio import Redis

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.db import connect, create_pool, ensure_database
from livecommerce.embedded import EmbeddedBackends
from livecommerce.migrations import migrate
from tests.realtime.conftest import World, make_world
from tests.support import AppServer, start_app, stop_app


class Faults:
    """A private :class:`EmbeddedBackends` whose servers tests stop and restart.

    Every start/stop runs on one long-lived thread: the servers get a parent-death signal when
    the *thread* that started them exits, so they must not be started from a per-test executor.
    """

    def __init__(self, emb: EmbeddedBackends, thread: ThreadPoolExecutor) -> None:
        self.emb, self._thread = emb, thread

    @property
    def database_url(self) -> str:
        return self.emb.urls.database_url

    @property
    def redis_url(self) -> str:
        return self.emb.urls.redis_url

    async def _run(self, fn: Callable[[], None]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def stop_postgres(self) -> None:
        await self._run(self.emb.stop_postgres)

    async def start_postgres(self) -> None:
        await self._run(self.emb.start_postgres)

    async def kill_valkey(self) -> None:
        await self._run(self.emb.kill_valkey)

    async def start_valkey(self) -> None:
        await self._run(self.emb.start_valkey)


@pytest.fixture(scope="module")
def private_backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    """This module's own PostgreSQL and Valkey, schema migrated."""
    emb = EmbeddedBackends(tmp_path_factory.mktemp("faults"), fsync=False)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="faults") as thread:
        thread.submit(emb.start).result()
        try:
            asyncio.run(_prepare(emb.urls.database_url))
            yield Faults(emb, thread)
        finally:
            thread.submit(emb.stop).result()


async def _prepare(url: str) -> None:
    await ensure_database(url)
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture
async def faulty(private_backends: Faults) -> AsyncIterator[Faults]:
    """The private backends, both running, for one test (restarted if a test left one down)."""
    await private_backends.start_postgres()
    await private_backends.start_valkey()
    client = Redis.from_url(private_backends.redis_url)
    await client.flushdb()
    await client.aclose()
    yield private_backends
    await private_backends.start_postgres()
    await private_backends.start_valkey()


@pytest.fixture
def fault_settings(faulty: Faults) -> Settings:
    return Settings().with_backends(faulty.database_url, faulty.redis_url)


@pytest.fixture
async def fault_world(fault_settings: Settings) -> World:
    """A host, goods and a live room in the private PostgreSQL."""
    pool: asyncpg.Pool = await create_pool(fault_settings.database)
    try:
        return await make_world(pool)
    finally:
        await pool.close()


@pytest.fixture
async def fault_server(fault_settings: Settings) -> AsyncIterator[AppServer]:
    """The real app on a real port, on the private backends."""
    server = await start_app(create_app(fault_settings))
    yield server
    await stop_app(server)
