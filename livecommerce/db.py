"""The asyncpg pool (JSON codecs set per connection) and database bootstrap helpers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from livecommerce.config import DatabaseConfig

log = logging.getLogger("livecommerce.db")
POOL_CLOSE_SECONDS = 10.0


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, schema="pg_catalog", encoder=_dumps, decoder=orjson.loads, format="text"
        )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


InitConnection = Callable[[asyncpg.Connection], Awaitable[None]]


async def create_pool(
    cfg: DatabaseConfig, *, max_size: int | None = None, init: InitConnection | None = None
) -> asyncpg.Pool:
    """The application's pool (JSON/JSONB as Python values), or with ``max_size`` and ``init``
    a small pool of its own for one component (e.g. the analytics writer's COPY connections)."""
    size = cfg.pool_max_size if max_size is None else max_size
    pool = await asyncpg.create_pool(
        cfg.url,
        min_size=min(cfg.pool_min_size, size),
        max_size=size,
        command_timeout=cfg.command_timeout_seconds,
        init=_init_connection if init is None else init,
    )
    assert pool is not None
    return pool


async def close_pool(pool: asyncpg.Pool, within: float = POOL_CLOSE_SECONDS) -> None:
    """Close gracefully, but never hang a shutdown on a connection someone forgot to release:
    after ``within`` seconds the remaining connections are terminated (and that is logged)."""
    busy = pool.get_size() - pool.get_idle_size()
    if busy:
        log.warning("closing the PostgreSQL pool with %d connections still in use", busy)
    try:
        await asyncio.wait_for(pool.close(), within)
    except TimeoutError:
        log.error("PostgreSQL pool did not close within %ss; terminating it", within)
        pool.terminate()


async def connect(url: str) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


async def ensure_database(url: str) -> bool:
    """Create the database that ``url`` names if it does not exist; True when created."""
    name = database_name(url)
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


def redact(url: str) -> str:
    """A URL with its password replaced, for logs and startup lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
