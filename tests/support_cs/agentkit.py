"""Helpers for the agent tests: a host's shop with goods, agent accounts signed in with their
own cookie session (aiohttp cookie jar, CSRF header), their WebSocket feed."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from tests.commerce.conftest import bearer
from tests.support import http

if TYPE_CHECKING:
    from tests.support_cs.conftest import Desk


@dataclass
class HostShop:
    """A host (bearer token) with one goods item: conversations from it belong to this shop."""

    desk: Desk
    id: int
    token: str
    goods_id: int
    agents: list[Agent] = field(default_factory=list)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await http(method, self.desk.shop.url + path, json=body, headers=bearer(self.token))

    async def agent(self, name: str, capacity: int = 2) -> Agent:
        """A new agent account of this shop, signed in (not online until ``online()``)."""
        login = f"{name.lower()}-{secrets.token_hex(3)}"
        password = "pw-" + secrets.token_hex(6)
        status, body = await self.call("POST", "/api/host/support/agents", {
            "name": name, "login": login, "password": password, "capacity": capacity,
        })  # fmt: skip
        assert status == 201, body
        agent = Agent(self.desk.shop.url, int(body["id"]), login, password)
        self.agents.append(agent)
        status, body = await agent.sign_in()
        assert status == 201, body
        return agent


@dataclass
class Agent:
    """One agent's browser: its own cookie jar (the agent session) and CSRF token."""

    url: str
    id: int
    login: str
    password: str
    csrf: str = ""
    session: aiohttp.ClientSession = field(init=False)

    def __post_init__(self) -> None:
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def sign_in(self, password: str | None = None) -> tuple[int, Any]:
        status, body = await self.call(
            "POST",
            "/api/agent/session",
            {"login": self.login, "password": password or self.password},
        )
        if status == 201:
            self.csrf = body["csrf_token"]
        return status, body

    async def call(
        self, method: str, path: str, body: Any = None, *, csrf: bool = True
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
        async with self.session.request(method, self.url + path, json=body, headers=headers) as r:
            data = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, data

    async def online(self, online: bool = True) -> dict[str, Any]:
        status, body = await self.call("POST", "/api/agent/presence", {"online": online})
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    async def conv(self, conv_id: int, action: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("POST", f"/api/agent/conversations/{conv_id}/{action}", body)

    async def feed(self, origin: str | None = None) -> Feed:
        headers = {"Origin": origin} if origin else {}
        ws = await self.session.ws_connect(self.url + "/api/agent/feed", headers=headers)
        feed = Feed(ws)
        hello = await feed.next("hello")
        feed.hello = hello
        return feed

    async def close(self) -> None:
        await self.session.close()


@dataclass
class Feed:
    """An open agent socket: frames read in order, waited for by type and predicate."""

    ws: aiohttp.ClientWebSocketResponse
    hello: dict[str, Any] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def next(self, kind: str, within: float = 10.0, **match: Any) -> dict[str, Any]:
        """The next frame of ``kind`` whose fields (or its conversation's) match ``match``."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            assert left > 0, (
                f"no {kind} frame matching {match}; seen {[f['type'] for f in self.seen]}"
            )
            msg = await self.ws.receive(timeout=left)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frame = msg.json()
            self.seen.append(frame)
            if frame["type"] != kind:
                continue
            target = frame.get("conversation") or frame.get("message") or frame
            if all(target.get(k, frame.get(k)) == v for k, v in match.items()):
                return frame

    async def close(self) -> None:
        await self.ws.close()


async def queued(desk: Desk, user: str, session_from: str) -> int:
    """Have ``user`` enter from ``session_from`` (``goods:<id>``, ``room:<id>``) and ask for a
    human; the conversation id."""
    await desk.push(user=user, type="event", event="user_enter_tempsession",
                    session_from=session_from)  # fmt: skip
    await desk.push(user=user, type="text", content="人工")
    await desk.settled()
    conv_id: int = await desk.pool.fetchval(
        "SELECT id FROM support_conversations WHERE openid = $1", desk.openid(user)
    )
    return conv_id


async def state(desk: Desk, conv_id: int) -> tuple[str, int | None]:
    row = await desk.pool.fetchrow(
        "SELECT state, agent_id FROM support_conversations WHERE id = $1", conv_id
    )
    return row["state"], row["agent_id"]


async def eventually(check: Any, within: float = 10.0) -> None:
    """Poll the async ``check()`` until it returns truthy."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
