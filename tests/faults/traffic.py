"""Traffic for fault tests: REST calls issued in a loop, each recorded with when it started."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True)
class Result:
    call: Call
    started: float  # time.monotonic()
    finished: float
    status: int
    retry_after: str | None
    body: Any


async def request(base_url: str, call: Call) -> Result:
    """One call on a fresh connection (a pooled one could hide a server-side problem)."""
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            call.method, base_url + call.path, headers=call.headers, json=call.json
        ) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
    finished = time.monotonic()
    return Result(call, started, finished, resp.status, resp.headers.get("Retry-After"), body)


async def keep_calling(base_url: str, calls: list[Call], out: list[Result]) -> None:
    """Issue ``calls`` round after round until cancelled, appending every result to ``out``."""
    while True:
        for call in calls:
            out.append(await request(base_url, call))
        await asyncio.sleep(0.02)


def assert_unavailable(result: Result, backend: str) -> None:
    """A 503 in the documented shape, naming ``backend``, with a Retry-After."""
    assert result.status == 503, result
    assert result.retry_after is not None, result
    assert int(result.retry_after) > 0, result
    err = result.body["error"]
    assert err["code"] == "unavailable", result
    assert err["backend"] == backend, result
    assert isinstance(err["message"], str), result
    assert err["message"], result
