"""Traffic for fault tests: REST calls issued in a loop, each recorded with when it started."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web


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


# Routes that touch neither PostgreSQL nor Redis (and /ws, which is no HTTP route).
NO_BACKEND = frozenset({"/ws", "/healthz", "/metrics", "/api/openapi.json"})
# The console and audience pages are static files (their assets under /static/ too).
PAGES = frozenset(
    {"/", "/console", "/agent", "/live", "/live/{room_id}", "/static/{name}", "/favicon.ico"}
)


def every_route(app: web.Application, tokens: list[str]) -> list[Call]:
    """One call per route of ``app`` and per token (``{...}`` path parts set to 1; an empty
    JSON object and an Idempotency-Key on writes): what a sweep over the whole API sends."""
    calls: list[Call] = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "OPTIONS", "*") or path in NO_BACKEND | PAGES:
            continue
        if path.startswith("/api/docs"):
            continue
        path = re.sub(r"\{[^}]+\}", "1", path)
        for token in tokens:
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "sweep"}
            body = {} if route.method in ("POST", "PUT", "PATCH") else None
            calls.append(Call(route.method, path, headers, body))
    return calls


def check_sweep(results: list[Result], backend: str) -> int:
    """Every 5xx of a sweep during an outage of ``backend`` is its 503 (``/readyz`` has its own
    body), and no answer blames the client's connection; the number of 503s."""
    unavailable = 0
    for r in results:
        if r.status >= 500 and r.call.path != "/readyz":
            assert_unavailable(r, backend)
            unavailable += 1
        if isinstance(r.body, dict) and "error" in r.body:
            assert r.body["error"]["code"] != "connection_lost", r
    return unavailable
