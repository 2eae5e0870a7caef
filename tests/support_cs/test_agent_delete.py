"""A host deletes an agent over real HTTP: the conversations the agent held go back to the
queue and on to another online agent (recorded), the agent's session and open socket stop at
once (1008), another shop cannot delete it, and the login can be used again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from tests.support_cs.agentkit import Agent, HostShop, queued, state
from tests.support_cs.conftest import Desk

Shops = Callable[[], Awaitable[HostShop]]


async def test_deleting_an_agent_requeues_and_revokes(desk: Desk, shops: Shops) -> None:
    s, other = await shops(), await shops()
    a1, a2 = await s.agent("A1"), await s.agent("A2")
    f1 = await a1.feed()
    cid = await queued(desk, "dora", f"goods:{s.goods_id}")
    assert await state(desk, cid) == ("agent", a1.id)
    f2 = await a2.feed()
    # Another shop's host: 404, nothing changes; a malformed id: 400.
    status, body = await other.call("DELETE", f"/api/host/support/agents/{a1.id}")
    assert (status, body["error"]["code"]) == (404, "agent_not_found")
    status, _ = await s.call("DELETE", "/api/host/support/agents/nope")
    assert status in (400, 404)
    assert await state(desk, cid) == ("agent", a1.id)

    status, body = await s.call("DELETE", f"/api/host/support/agents/{a1.id}")
    assert status == 200, body
    assert body["deleted"] is True
    assert cid in body["requeued"]
    assert await state(desk, cid) == ("agent", a2.id)  # re-queued, then to the online A2
    await f2.next("conversation", id=cid, state="agent", agent_id=a2.id)
    reasons = await desk.pool.fetch(
        "SELECT from_state, to_state, reason FROM support_transitions WHERE openid = $1"
        " ORDER BY id",
        desk.openid("dora"),
    )
    assert [tuple(r) for r in reasons][-2:] == [
        ("agent", "queued", "agent deleted"),
        ("queued", "agent", "assigned"),
    ]
    # The deleted agent's open socket closes with 1008; its session no longer works.
    msg = await f1.ws.receive(timeout=10)
    while msg.type == aiohttp.WSMsgType.TEXT:
        msg = await f1.ws.receive(timeout=10)
    assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1008, "agent_not_found")
    status, body = await a1.call("GET", "/api/agent/session")
    assert (status, body["error"]["code"]) == (404, "agent_not_found")
    status, body = await a1.call("POST", "/api/agent/presence", {})
    assert (status, body["error"]["code"]) == (404, "agent_not_found")
    status, body = await a1.conv(cid, "close")
    assert status == 404, body
    status, body = await a1.sign_in()
    assert (status, body["error"]["code"]) == (401, "bad_credentials")
    status, listed = await s.call("GET", "/api/host/support/agents")
    assert [a["id"] for a in listed["items"]] == [a2.id]
    # Deleting again: 404; the login is free again.
    status, _ = await s.call("DELETE", f"/api/host/support/agents/{a1.id}")
    assert status == 404
    status, body = await s.call("POST", "/api/host/support/agents", {
        "name": "A1 again", "login": a1.login, "password": "another-password",
    })  # fmt: skip
    assert status == 201, body
    again = Agent(desk.shop.url, int(body["id"]), a1.login, "another-password")
    try:
        status, _ = await again.sign_in()
        assert status == 201
    finally:
        await again.close()
    await f2.close()
