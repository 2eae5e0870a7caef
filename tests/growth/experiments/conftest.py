"""Experiment fixtures: the commerce shop (real app, PostgreSQL, Redis) plus helpers."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.commerce.conftest import Shop, bearer, shop  # noqa: F401 (the shop fixture)
from tests.support import http


async def create_started(app: Shop, token: str, **spec: Any) -> dict[str, Any]:
    """Create an experiment over HTTP and start it; the started experiment."""
    body = {"key": "exp-" + str(id(spec)), "variants": [{"key": "a"}, {"key": "b"}], **spec}
    status, created = await http(
        "POST", app.url + "/api/host/experiments", json=body, headers=bearer(token)
    )
    assert status == 201, created
    assert isinstance(created, dict)
    status, started = await http(
        "POST", f"{app.url}/api/host/experiments/{created['id']}/start", headers=bearer(token)
    )
    assert status == 200, started
    assert isinstance(started, dict)
    return started


async def users(pool: asyncpg.Pool, n: int, prefix: str = "oSynth") -> list[int]:
    """``n`` users inserted directly (openids ``{prefix}{i}``): their ids in order."""
    rows = await pool.fetch(
        """INSERT INTO users (openid) SELECT $1 || g FROM generate_series(0, $2 - 1) g
           RETURNING id""",
        prefix,
        n,
    )
    return [r["id"] for r in rows]
