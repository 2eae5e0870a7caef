"""Commerce fixtures: hosts with tokens, goods, logged-in users and the fake WeChat's simulator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from livecommerce import keys
from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from tests.support import AppServer, http

# WeChat DevTools' mock wx.chooseAddress answer: what a buyer ships to in these tests.
ADDRESS = {
    "userName": "张三",
    "telNumber": "13800138000",
    "provinceName": "广东省",
    "cityName": "广州市",
    "countyName": "海珠区",
    "detailInfo": "新港中路397号",
    "postalCode": "510000",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Shop:
    """A running app plus helpers to act as hosts, buyers and WeChat Pay."""

    server: AppServer
    pool: asyncpg.Pool

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def fake_url(self) -> str:
        return self.server.app[keys.FAKE_WECHAT_URL]

    @property
    def notify_url(self) -> str:
        return self.url + "/api/pay/wechat/notify"

    async def host(self) -> tuple[int, str]:
        host_id: int = await self.pool.fetchval(
            "INSERT INTO hosts (name) VALUES ('host-' || gen_random_uuid()) RETURNING id"
        )
        return host_id, issue_token(DEV_SECRET, "host", host_id, 3600)

    async def goods(
        self, host_id: int, *, stock: int = 10, price_fen: int = 1990, **extra: Any
    ) -> int:
        goods_id: int = await self.pool.fetchval(
            """INSERT INTO goods (host_id, title, price_fen, stock, category, status)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            host_id,
            extra.get("title", "Test goods"),
            price_fen,
            stock,
            extra.get("category", ""),
            extra.get("status", "on_sale"),
        )
        return goods_id

    async def login(self, user: str | None = None) -> str:
        """A user token via the real login flow (fake WeChat over HTTP)."""
        user = user or "u" + secrets.token_hex(6)
        status, body = await http(
            "POST",
            self.url + "/api/auth/wechat/login",
            json={"code": f"{user}.{secrets.token_hex(8)}"},
        )
        assert status == 200, body
        assert isinstance(body, dict)
        token = body["token"]
        assert isinstance(token, str)
        return token

    async def order(
        self,
        token: str,
        goods_id: int,
        quantity: int = 1,
        key: str | None = None,
        address: dict[str, Any] | None = ADDRESS,
    ) -> tuple[int, dict[str, Any]]:
        """Create an order over HTTP (shipping to ``ADDRESS`` unless told otherwise)."""
        request: dict[str, Any] = {"goods_id": goods_id, "quantity": quantity}
        if address is not None:
            request["address"] = address
        status, body = await http(
            "POST",
            self.url + "/api/orders",
            json=request,
            headers={**bearer(token), "Idempotency-Key": key or secrets.token_hex(8)},
        )
        assert isinstance(body, dict)
        return status, body

    async def pay(self, order: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        """Have the fake WeChat's simulator pay ``order`` (a signed notification to us)."""
        request = {
            "out_trade_no": order["out_trade_no"],
            "total": order["total_fen"],
            "notify_url": self.notify_url,
            **overrides,
        }
        status, body = await http("POST", self.fake_url + "/dev/pay", json=request)
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    async def replay(self, sent: dict[str, Any], **header_changes: str) -> tuple[int, Any]:
        """Post a notification the simulator sent again, byte for byte (headers changeable)."""
        headers = {**sent["notify_headers"], **header_changes}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.notify_url, data=sent["notify_body"].encode(), headers=headers) as r,
        ):
            return r.status, await r.json()

    async def stock(self, goods_id: int) -> int:
        value: int = await self.pool.fetchval("SELECT stock FROM goods WHERE id = $1", goods_id)
        return value


@pytest.fixture
async def shop(server: AppServer, pool: asyncpg.Pool) -> Shop:
    """The app on a real port with its in-process fake WeChat, and a clean database."""
    return Shop(server, pool)


@pytest.fixture
async def fuzz_shop(shop: Shop) -> tuple[Shop, dict[str, str]]:
    """A shop with a host, goods and a logged-in user, for the fuzz run's tokens to act on."""
    host_id, host_token = await shop.host()
    for i in range(3):
        await shop.goods(host_id, stock=1000, category=f"c{i}")
    user_token = await shop.login("fuzzer")
    return shop, {"user": user_token, "host": host_token}
