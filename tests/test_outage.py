"""Backend outage classification by exception class and origin (never message text), and the
once-per-outage log."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from redis import exceptions as redis_exc
from redis.asyncio import Redis

from livecommerce.embedded.processes import free_port
from livecommerce.outage import OutageLog, suspected_backend, unavailable_backend


async def test_refused_postgres_connection_is_postgres() -> None:
    """A pool whose server refuses connections raises a plain OSError from inside asyncpg:
    classified postgres by its origin."""
    pool = await asyncpg.create_pool(
        f"postgresql://u:p@127.0.0.1:{free_port()}/db", min_size=0, max_size=1
    )
    try:
        with pytest.raises(ConnectionRefusedError) as info:
            await pool.fetchval("SELECT 1")
        assert unavailable_backend(info.value) == "postgres"
    finally:
        await pool.close()


async def test_refused_redis_connection_is_redis() -> None:
    """redis-py's ConnectionError to a closed port is classified redis."""
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(redis_exc.ConnectionError) as info:
            await client.ping()
        assert unavailable_backend(info.value) == "redis"
    finally:
        await client.aclose()


def test_an_oserror_of_our_own_is_no_backend() -> None:
    """An OSError raised outside asyncpg and redis-py (a client connection reset, a file error)
    names no backend, whatever its message says."""
    for exc in (
        ConnectionResetError("connection to postgres lost"),
        OSError("redis"),
        TimeoutError(),
    ):
        with pytest.raises(OSError) as info:  # noqa: PT011 - any of them
            raise exc
        assert unavailable_backend(info.value) is None


def test_error_raised_while_handling_a_backend_error_is_that_backend() -> None:
    """asyncpg's InternalClientError raised while handling a server shutdown is postgres (via
    ``__context__``); on its own it is only *suspected* (a probe decides)."""

    def reset_after_shutdown() -> None:
        try:
            raise asyncpg.AdminShutdownError("terminating connection due to administrator command")
        except asyncpg.AdminShutdownError:
            raise asyncpg.InternalClientError("cannot switch to state 15") from None

    with pytest.raises(asyncpg.InternalClientError) as info:
        reset_after_shutdown()
    assert info.value.__context__ is not None
    assert unavailable_backend(info.value) == "postgres"
    alone = asyncpg.InterfaceError("connection is closed")
    assert unavailable_backend(alone) is None
    assert suspected_backend(alone) == "postgres"
    assert suspected_backend(ValueError()) is None


def test_exception_group_member_decides() -> None:
    """A TaskGroup failure containing a backend error names that backend."""
    group = ExceptionGroup("tg", [ValueError("x"), asyncpg.CannotConnectNowError("starting")])
    assert unavailable_backend(group) == "postgres"


async def test_outage_logged_once_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    """Many failures of one outage: one warning when it starts, one when the probe succeeds."""
    caplog.set_level(logging.WARNING, logger="livecommerce.outage")
    up = asyncio.Event()

    async def probe() -> None:
        if not up.is_set():
            raise ConnectionRefusedError

    outages = OutageLog({"redis": probe})
    for _ in range(50):
        outages.failed("redis", ConnectionRefusedError())
    assert outages.is_down("redis")
    assert await outages.confirm("redis")
    up.set()
    for _ in range(40):
        if not outages.is_down("redis"):
            break
        await asyncio.sleep(0.05)
    await outages.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("redis unavailable")
    assert "available again" in lines[1]
    assert "(50 requests answered 503)" in lines[1]
    assert not await outages.confirm("redis")
