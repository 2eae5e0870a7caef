"""A Redis that stops answering without closing its connections (a stopped process, a network
path that drops packets): requests answer 503 naming redis within a bounded time instead of
hanging (a push hung for more than 30 s before), and succeed again once it answers."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from livecommerce.app import create_app
from livecommerce.config import Settings
from tests.outages.conftest import Faults
from tests.outages.test_redis_outage import ok, redis_calls
from tests.outages.traffic import assert_unavailable, request
from tests.realtime.conftest import World
from tests.support import AppServer, start_app, stop_app

TIMEOUT = 0.5  # redis.command_timeout_seconds for this test


@pytest.fixture
async def quick_server(fault_settings: Settings) -> AsyncIterator[AppServer]:
    settings = dataclasses.replace(
        fault_settings,
        redis=dataclasses.replace(fault_settings.redis, command_timeout_seconds=TIMEOUT),
    )
    server = await start_app(create_app(settings))
    yield server
    await stop_app(server)


@pytest.mark.timeout(120)
async def test_hung_redis_answers_503_not_a_hang(
    quick_server: AppServer, fault_world: World, faulty: Faults
) -> None:
    call = redis_calls(fault_world)[0]
    assert ok(await request(quick_server.url, call))
    valkey = faulty.emb.pids[-1]
    os.kill(valkey, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = await request(quick_server.url, call)
        took = time.monotonic() - started
    finally:
        os.kill(valkey, signal.SIGCONT)
    assert_unavailable(result, "redis")
    # 4 attempts (3 retries) of TIMEOUT each plus backoff, with room for a loaded machine.
    assert took < 4 * TIMEOUT + 10, took
    deadline = time.monotonic() + 10
    while not ok(last := await request(quick_server.url, call)):
        assert time.monotonic() < deadline, last
