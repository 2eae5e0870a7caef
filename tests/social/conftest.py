"""Social-commerce fixtures: the commerce shop plus fast users, event draining and helpers."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from livecommerce import keys
from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.devtools.fake_wechat import openid_for
from livecommerce.social import events
from tests.commerce.conftest import Shop, bearer, shop  # noqa: F401 (the shop fixture)


@dataclass
class Social:
    """A shop plus direct helpers for the social services."""

    shop: Shop

    @property
    def url(self) -> str:
        return self.shop.url

    @property
    def pool(self) -> Any:
        return self.shop.pool

    @property
    def app(self) -> Any:
        return self.shop.server.app

    @property
    def deps(self) -> events.Deps:
        return events.Deps(self.app[keys.SETTINGS], self.app[keys.FLASH_STOCK])

    async def user(self, name: str | None = None) -> tuple[int, str]:
        """A user row (openid as the fake WeChat gives it) and a user token for it."""
        name = name or "u" + secrets.token_hex(6)
        client = self.app[keys.WECHAT_CLIENT]
        uid: int = await self.pool.fetchval(
            "INSERT INTO users (openid, nickname, avatar_url) VALUES ($1, $2, $3) RETURNING id",
            openid_for(client.app_id, name),
            name,
            f"https://img.example/{name}.png",
        )
        return uid, issue_token(DEV_SECRET, "user", uid, 3600)

    async def settle(self) -> None:
        """Apply every pending order event (the app's worker may be applying some too)."""
        for _ in range(200):
            await events.drain(self.pool, self.deps)
            if await events.pending(self.pool) == 0:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("order events did not settle")

    async def post(
        self, path: str, token: str | None = None, json: Any = None, key: str | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        headers = bearer(token) if token else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        async with (
            aiohttp.ClientSession() as s,
            s.post(self.url + path, json=json, data=data, headers=headers) as r,
        ):
            return r.status, await r.json()

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(self.url + path, headers=bearer(token) if token else {}) as r,
        ):
            return r.status, await r.json()


@pytest.fixture
async def social(shop: Shop) -> Social:  # noqa: F811
    """The app on a real port with clean PostgreSQL/Redis and social helpers."""
    return Social(shop)


def iso(delta_seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_seconds)).isoformat()
