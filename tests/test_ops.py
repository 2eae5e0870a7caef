"""Operational endpoints and the uniform error shape, over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from livecommerce import keys
from livecommerce.app import redis_client
from livecommerce.config import Settings
from tests.support import AppServer, http


async def test_healthz_and_readyz(server: AppServer) -> None:
    """/healthz is 200; /readyz is 200 with both backends answering."""
    status, body = await http("GET", server.url + "/healthz")
    assert status == 200
    assert body == {"status": "ok", "node": server.app[keys.NODE].id}
    status, body = await http("GET", server.url + "/readyz")
    assert status == 200
    assert body == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_readyz_503_when_redis_is_down(
    make_server: Callable[..., Any], settings: Settings
) -> None:
    """A Redis that does not answer makes /readyz 503 and names it; the process stays up."""
    broken = settings.with_backends(settings.database.url, "redis://127.0.0.1:1/0")
    srv: AppServer = await make_server(broken)
    status, body = await http("GET", srv.url + "/readyz")
    assert status == 503
    assert isinstance(body, dict)
    assert body["checks"]["postgres"] == "ok"  # type: ignore[index]
    assert body["checks"]["redis"].startswith("error")  # type: ignore[index]
    assert (await http("GET", srv.url + "/healthz"))[0] == 200


async def test_404_and_405_are_json(server: AppServer) -> None:
    """Unknown routes and wrong methods get the uniform JSON error body."""
    status, body = await http("GET", server.url + "/no/such/thing")
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "Not Found"}}
    status, body = await http("DELETE", server.url + "/healthz")
    assert status == 405
    assert body["error"]["code"] == "method_not_allowed"  # type: ignore[index]


async def test_metrics_exposition(server: AppServer) -> None:
    """/metrics is Prometheus text with request counts by route template and pool gauges."""
    await http("GET", server.url + "/healthz")
    await http("GET", server.url + "/nope/123")
    status, text = await http("GET", server.url + "/metrics")
    assert status == 200
    assert isinstance(text, str)
    assert (
        'livecommerce_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    )
    assert 'route="unmatched",status="404"' in text
    assert "/nope/123" not in text
    assert "livecommerce_db_pool_size" in text
    assert "livecommerce_websockets_open 0.0" in text


async def test_request_id_is_echoed_or_generated(server: AppServer) -> None:
    """A sane X-Request-Id is echoed; a missing or hostile one is replaced."""
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.get(server.url + "/healthz", headers={"X-Request-Id": "abc-123"}) as r:
            assert r.headers["X-Request-Id"] == "abc-123"
        async with s.get(server.url + "/healthz", headers={"X-Request-Id": "x" * 500}) as r:
            assert len(r.headers["X-Request-Id"]) == 32


async def test_redis_pool_waits_for_a_free_connection(settings: Settings) -> None:
    """More concurrent commands than pool connections: they queue for one (bounded), none fails
    with "Too many connections" (which, under a burst of joins, closed viewers with 1012)."""
    cfg = dataclasses.replace(settings.redis, max_connections=2, pool_timeout_seconds=10.0)
    client = redis_client(cfg)
    try:
        # Each BLPOP on an empty list holds its connection for 0.1 s.
        results = await asyncio.gather(
            *(client.blpop([f"lc:test:empty:{i}"], timeout=0.1) for i in range(8))
        )
        assert results == [None] * 8
        short = redis_client(dataclasses.replace(cfg, max_connections=1, pool_timeout_seconds=0.05))
        try:
            with pytest.raises(RedisConnectionError):
                await asyncio.gather(
                    *(short.blpop([f"lc:test:empty:{i}"], timeout=0.5) for i in range(2))
                )
        finally:
            await short.aclose()
    finally:
        await client.aclose()
