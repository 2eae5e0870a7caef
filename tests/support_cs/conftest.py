"""Customer-service fixtures: a running app whose fake WeChat pushes buyer messages to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from livecommerce import keys
from livecommerce.devtools.fake_wechat import openid_for
from livecommerce.support.routes import PUSH_PATH
from tests.commerce.conftest import Shop, shop  # noqa: F401 (the shop fixture)
from tests.console.conftest import browser  # noqa: F401 (the Playwright browser fixture)
from tests.support import AppServer, http
from tests.support_cs.agentkit import HostShop


@dataclass
class Desk:
    """A shop plus helpers to act as WeChat pushing buyer messages and to read what was sent."""

    shop: Shop

    @property
    def server(self) -> AppServer:
        return self.shop.server

    @property
    def pool(self) -> asyncpg.Pool:
        return self.shop.pool

    @property
    def push_url(self) -> str:
        return self.shop.url + PUSH_PATH

    def openid(self, user: str) -> str:
        return openid_for(self.server.app[keys.FAKE_WECHAT].app_id, user)

    async def push(self, url: str | None = None, **spec: Any) -> dict[str, Any]:
        """Have the fake WeChat push one message (``spec`` as /dev/support/push takes it)."""
        status, body = await http(
            "POST", self.shop.fake_url + "/dev/support/push",
            json={"url": url or self.push_url, **spec},
        )  # fmt: skip
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    async def sent(self, openid: str) -> list[dict[str, Any]]:
        """What the fake's send API accepted for ``openid``."""
        status, body = await http("GET", self.shop.fake_url + "/dev/support/messages", headers=None)
        assert status == 200
        assert isinstance(body, dict)
        return [m for m in body["messages"] if m["touser"] == openid]

    async def settled(self, within: float = 10.0) -> None:
        """Wait until every inbox row is processed and no reply is pending."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            left = await self.pool.fetchval(
                """SELECT (SELECT count(*) FROM support_inbox WHERE processed_at IS NULL)
                        + (SELECT count(*) FROM support_replies WHERE state = 'pending')"""
            )
            if left == 0:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("customer-service work did not settle")


@pytest.fixture
async def desk(shop: Shop) -> Desk:  # noqa: F811 (the shop fixture)
    """The app with its fake WeChat, ready to push customer-service messages."""
    return Desk(shop)


@pytest.fixture
async def shops(desk: Desk) -> AsyncIterator[Callable[[], Awaitable[HostShop]]]:
    """Factory of host shops (each with goods); their agents' sessions closed afterwards."""
    made: list[HostShop] = []

    async def make() -> HostShop:
        host_id, token = await desk.shop.host()
        goods = await desk.shop.goods(host_id, title="Silk scarf")
        made.append(HostShop(desk, host_id, token, goods))
        return made[-1]

    yield make
    for s in made:
        for a in s.agents:
            await a.close()
