"""Hand-off to humans over real HTTP: queue, fair assignment, claim, reply, transfer, close,
an agent going away (re-queued after the grace period), two agents racing."""

from __future__ import annotations

import asyncio
from typing import Any

from livecommerce import keys
from tests.commerce.conftest import bearer
from tests.support import http
from tests.support_cs.conftest import Desk


class Console:
    """The host console acting for its agents."""

    def __init__(self, desk: Desk, token: str) -> None:
        self.desk, self.headers = desk, bearer(token)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await http(method, self.desk.shop.url + "/api/host/support" + path, json=body,
                          headers=self.headers)  # fmt: skip

    async def agent(self, name: str, capacity: int = 2, online: bool = True) -> int:
        status, agent = await self.call("POST", "/agents", {"name": name, "capacity": capacity})
        assert status == 201, agent
        if online:
            await self.online(agent["id"])
        return int(agent["id"])

    async def online(self, agent_id: int, online: bool = True) -> dict[str, Any]:
        status, agent = await self.call("POST", f"/agents/{agent_id}/presence", {"online": online})
        assert status == 200, agent
        return agent


async def console(desk: Desk) -> Console:
    _, token = await desk.shop.host()
    return Console(desk, token)


async def queued(desk: Desk, user: str) -> int:
    """Have ``user`` ask for a human; the conversation id."""
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


async def test_queue_claim_reply_close_and_back_to_bot(desk: Desk) -> None:
    """bot -> queued -> agent (claim) -> reply sent -> closed -> bot, every move recorded."""
    c = await console(desk)
    conv = await queued(desk, "amy")
    status, q = await c.call("GET", "/queue")
    assert status == 200
    assert [x["id"] for x in q["items"]] == [conv]
    agent = await c.agent("Ann", online=False)  # offline: nothing assigned automatically
    status, held = await c.call("POST", f"/agents/{agent}/conversations/{conv}/claim", None)
    assert status == 200
    assert held["state"] == "agent"
    assert held["agent_id"] == agent
    status, again = await c.call("POST", f"/agents/{agent}/conversations/{conv}/claim", None)
    assert status == 409
    assert again["error"]["code"] == "not_queued"
    await desk.push(user="amy", type="text", content="my orders")  # bot stays silent
    await desk.settled()
    status, sent = await c.call(
        "POST", f"/agents/{agent}/conversations/{conv}/reply", {"text": "您好，我来帮您"}
    )
    assert status == 201, sent
    await desk.settled()
    texts = [m["text"]["content"] for m in await desk.sent(desk.openid("amy"))]
    assert texts == ["正在为您转接人工客服，请稍候。", "您好，我来帮您"]
    status, hist = await c.call("GET", f"/conversations/{conv}")
    assert status == 200
    assert [m["sender"] for m in hist["messages"]] == ["buyer", "bot", "buyer", "agent"]
    status, closed = await c.call("POST", f"/agents/{agent}/conversations/{conv}/close", None)
    assert status == 200
    assert closed["state"] == "closed"
    assert (await http("POST", c.desk.shop.url + f"/api/host/support/agents/{agent}/conversations/{conv}/reply",
                       json={"text": "x"}, headers=c.headers))[0] == 409  # fmt: skip
    await desk.push(user="amy", type="text", content="zzz")
    await desk.settled()
    assert (await state(desk, conv))[0] == "bot"
    moves = await desk.pool.fetch(
        "SELECT from_state, to_state, reason FROM support_transitions ORDER BY id"
    )
    assert [(m["from_state"], m["to_state"], m["reason"]) for m in moves] == [
        ("bot", "queued", "asked"),
        ("queued", "agent", "claimed"),
        ("agent", "closed", "closed"),
        ("closed", "bot", "reopened"),
    ]


async def test_assignment_goes_to_the_least_busy_online_agent(desk: Desk) -> None:
    """Four hand-offs with two online agents (capacity 2 each): 2 and 2, not random; a fifth
    waits in the queue until a seat frees, then goes to that agent."""
    c = await console(desk)
    a1, a2 = await c.agent("A1"), await c.agent("A2")
    convs = [await queued(desk, f"b{i}") for i in range(5)]
    held = [await state(desk, cid) for cid in convs]
    assert [h[1] for h in held[:4]] == [a1, a2, a1, a2]
    assert held[4] == ("queued", None)
    status, _ = await c.call("POST", f"/agents/{a2}/conversations/{convs[1]}/close")
    assert status == 200
    assert await state(desk, convs[4]) == ("agent", a2)
    status, agents = await c.call("GET", "/agents")
    assert [a["active"] for a in agents["items"]] == [2, 2]


async def test_transfer_to_another_agent(desk: Desk) -> None:
    """A held conversation moves to another online agent; an offline target is refused."""
    c = await console(desk)
    a1 = await c.agent("A1")
    conv = await queued(desk, "cal")
    assert await state(desk, conv) == ("agent", a1)
    a2 = await c.agent("A2")
    off = await c.agent("Off", online=False)
    status, body = await c.call(
        "POST", f"/agents/{a1}/conversations/{conv}/transfer", {"to_agent_id": off}
    )
    assert status == 409
    assert body["error"]["code"] == "agent_offline"
    status, body = await c.call(
        "POST", f"/agents/{a1}/conversations/{conv}/transfer", {"to_agent_id": a2}
    )
    assert status == 200
    assert body["agent_id"] == a2
    status, body = await c.call("POST", f"/agents/{a1}/conversations/{conv}/close", None)
    assert status == 409
    assert body["error"]["code"] == "not_held"


async def test_agent_gone_is_requeued_after_grace_and_reassigned(desk: Desk) -> None:
    """An agent whose presence lease ended past the grace period loses the conversation to the
    queue, and it goes to the other online agent; a refresh within the lease changes nothing."""
    c = await console(desk)
    a1 = await c.agent("A1")
    conv = await queued(desk, "dee")
    await c.online(a1)  # a page refresh renews the lease: still holding it
    worker = desk.server.app[keys.SUPPORT].worker
    await worker.sweep()
    assert await state(desk, conv) == ("agent", a1)
    a2 = await c.agent("A2")
    await desk.pool.execute(
        "UPDATE support_agents SET online_until = now() - interval '10 minutes' WHERE id = $1", a1
    )
    await worker.sweep()
    assert await state(desk, conv) == ("agent", a2)
    reasons = await desk.pool.fetch("SELECT reason FROM support_transitions ORDER BY id")
    assert [r["reason"] for r in reasons][-2:] == ["agent away", "assigned"]


async def test_two_agents_claiming_at_once_one_wins(desk: Desk) -> None:
    """Two agents claim the same conversation concurrently: one 200, one 409."""
    c = await console(desk)
    a1, a2 = await c.agent("A1", online=False), await c.agent("A2", online=False)
    conv = await queued(desk, "eve")
    results = await asyncio.gather(
        *(c.call("POST", f"/agents/{a}/conversations/{conv}/claim", None) for a in (a1, a2))
    )
    assert sorted(s for s, _ in results) == [200, 409]


async def test_agents_of_another_host_are_404(desk: Desk) -> None:
    """A host cannot act as (or see) another host's agent."""
    c, other = await console(desk), await console(desk)
    agent = await c.agent("Mine", online=False)
    conv = await queued(desk, "fay")
    status, _ = await other.call("POST", f"/agents/{agent}/conversations/{conv}/claim", None)
    assert status == 404
    assert (await other.call("POST", f"/agents/{agent}/presence", {"online": True}))[0] == 404
    status, listed = await other.call("GET", "/agents")
    assert listed["items"] == []
