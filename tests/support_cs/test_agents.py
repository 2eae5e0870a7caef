"""Hand-off to humans over real HTTP, agents signed in on their own: queue, fair assignment,
claim, reply (within WeChat's window), transfer, close, an agent going away (re-queued after
the grace period), two agents racing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from livecommerce import keys
from tests.support_cs.agentkit import HostShop, queued, state
from tests.support_cs.conftest import Desk

Shops = Callable[[], Awaitable[HostShop]]


async def test_queue_claim_reply_close_and_back_to_bot(desk: Desk, shops: Shops) -> None:
    """bot -> queued -> agent (claim) -> reply sent -> closed -> bot, every move recorded."""
    s = await shops()
    conv = await queued(desk, "amy", f"goods:{s.goods_id}")
    status, q = await s.call("GET", "/api/host/support/queue")
    assert status == 200
    assert [x["id"] for x in q["items"]] == [conv]
    ann = await s.agent("Ann")  # signed in, not online: nothing assigned automatically
    status, q = await ann.call("GET", "/api/agent/queue")
    assert [x["id"] for x in q["items"]] == [conv]
    status, held = await ann.conv(conv, "claim")
    assert status == 200, held
    assert (held["state"], held["agent_id"]) == ("agent", ann.id)
    status, again = await ann.conv(conv, "claim")
    assert status == 409
    assert again["error"]["code"] == "not_queued"
    await desk.push(user="amy", type="text", content="my orders")  # bot stays silent
    await desk.settled()
    status, sent = await ann.conv(conv, "reply", {"text": "您好，我来帮您"})
    assert status == 201, sent
    assert sent["window_left"] == 4  # WeChat's 5 within 48 h, one used now
    await desk.settled()
    texts = [m["text"]["content"] for m in await desk.sent(desk.openid("amy"))]
    assert texts[-2:] == ["正在为您转接人工客服，请稍候。", "您好，我来帮您"]
    status, hist = await ann.call("GET", f"/api/agent/conversations/{conv}")
    assert status == 200
    assert [m["sender"] for m in hist["messages"]][-4:] == ["buyer", "bot", "buyer", "agent"]
    assert hist["messages"][-1]["state"] == "sent"
    assert [g["id"] for g in hist["goods"]] == [s.goods_id]  # the goods the buyer came from
    status, closed = await ann.conv(conv, "close")
    assert status == 200
    assert closed["state"] == "closed"
    status, late = await ann.conv(conv, "reply", {"text": "x"})
    assert status == 409
    assert late["error"]["code"] == "not_held"
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


async def test_a_reply_beyond_wechats_window_is_refused_up_front(desk: Desk, shops: Shops) -> None:
    """Five replies fit the buyer's 48 h window; the sixth is 409 ``quota_used`` (nothing
    queued); a closed window is 409 ``window_closed``."""
    s = await shops()
    conv = await queued(desk, "qua", f"goods:{s.goods_id}")
    ann = await s.agent("Ann")
    await ann.conv(conv, "claim")
    await desk.settled()
    used = await desk.pool.fetchval(
        "SELECT window_sent FROM support_windows WHERE openid = $1", desk.openid("qua")
    )
    for i in range(5 - used):
        status, body = await ann.conv(conv, "reply", {"text": f"answer {i}"})
        assert status == 201, body
    status, body = await ann.conv(conv, "reply", {"text": "one too many"})
    assert status == 409
    assert body["error"]["code"] == "quota_used"
    await desk.pool.execute(
        "UPDATE support_windows SET window_until = now() - interval '1 s' WHERE openid = $1",
        desk.openid("qua"),
    )
    status, body = await ann.conv(conv, "reply", {"text": "too late"})
    assert (status, body["error"]["code"]) == (409, "window_closed")
    await desk.settled()
    assert await desk.pool.fetchval(
        "SELECT count(*) FROM support_replies WHERE body->'text'->>'content' IN ($1, $2)",
        "one too many", "too late",
    ) == 0  # fmt: skip
    assert "45047" not in str(await desk.sent(desk.openid("qua")))


async def test_assignment_goes_to_the_least_busy_online_agent(desk: Desk, shops: Shops) -> None:
    """Four hand-offs with two online agents (capacity 2 each): 2 and 2, not random; a fifth
    waits in the queue until a seat frees, then goes to that agent."""
    s = await shops()
    a1, a2 = await s.agent("A1"), await s.agent("A2")
    await a1.online()
    await a2.online()
    convs = [await queued(desk, f"b{i}", f"goods:{s.goods_id}") for i in range(5)]
    held = [await state(desk, cid) for cid in convs]
    assert [h[1] for h in held[:4]] == [a1.id, a2.id, a1.id, a2.id]
    assert held[4] == ("queued", None)
    status, _ = await a2.conv(convs[1], "close")
    assert status == 200
    assert await state(desk, convs[4]) == ("agent", a2.id)
    status, listed = await s.call("GET", "/api/host/support/agents")
    assert [(a["active"], a["online"]) for a in listed["items"]] == [(2, True), (2, True)]
    status, mine = await a2.call("GET", "/api/agent/conversations")
    assert sorted(c["id"] for c in mine["items"]) == sorted([convs[3], convs[4]])


async def test_transfer_to_another_agent(desk: Desk, shops: Shops) -> None:
    """A held conversation moves to another online agent of the shop; an offline target is
    refused; the old holder cannot act on it any more."""
    s = await shops()
    a1 = await s.agent("A1")
    await a1.online()
    conv = await queued(desk, "cal", f"goods:{s.goods_id}")
    assert await state(desk, conv) == ("agent", a1.id)
    a2, off = await s.agent("A2"), await s.agent("Off")
    await a2.online()
    status, body = await a1.conv(conv, "transfer", {"to_agent_id": off.id})
    assert status == 409
    assert body["error"]["code"] == "agent_offline"
    status, body = await a1.conv(conv, "transfer", {"to_agent_id": a2.id})
    assert status == 200
    assert body["agent_id"] == a2.id
    status, body = await a1.conv(conv, "close")
    assert status == 409
    assert body["error"]["code"] == "not_held"
    reasons = await desk.pool.fetch("SELECT reason, agent_id FROM support_transitions ORDER BY id")
    assert (reasons[-1]["reason"], reasons[-1]["agent_id"]) == (f"transfer from {a1.id}", a2.id)


async def test_agent_gone_is_requeued_after_grace_and_reassigned(desk: Desk, shops: Shops) -> None:
    """An agent whose presence lease ended past the grace period loses the conversation to the
    queue, and it goes to the other online agent; renewing within the lease changes nothing."""
    s = await shops()
    a1 = await s.agent("A1")
    await a1.online()
    conv = await queued(desk, "dee", f"goods:{s.goods_id}")
    await a1.online()  # a page refresh renews the lease: still holding it
    worker = desk.server.app[keys.SUPPORT].worker
    await worker.sweep()
    assert await state(desk, conv) == ("agent", a1.id)
    a2 = await s.agent("A2")
    await a2.online()
    await desk.pool.execute(
        "UPDATE support_agents SET online_until = now() - interval '10 minutes' WHERE id = $1",
        a1.id,
    )
    await worker.sweep()
    assert await state(desk, conv) == ("agent", a2.id)
    reasons = await desk.pool.fetch("SELECT reason FROM support_transitions ORDER BY id")
    assert [r["reason"] for r in reasons][-2:] == ["agent away", "assigned"]


async def test_two_agents_claiming_at_once_one_wins(desk: Desk, shops: Shops) -> None:
    """Two agents claim the same conversation concurrently: one 200, one 409."""
    s = await shops()
    a1, a2 = await s.agent("A1"), await s.agent("A2")
    conv = await queued(desk, "eve", f"goods:{s.goods_id}")
    results = await asyncio.gather(a1.conv(conv, "claim"), a2.conv(conv, "claim"))
    assert sorted(st for st, _ in results) == [200, 409]


async def test_signing_out_requeues_at_the_next_sweep(desk: Desk, shops: Shops) -> None:
    """``presence {online: false}`` (the page's Sign out) ends the lease at once: the next
    sweep re-queues the agent's conversations without waiting for the grace period."""
    s = await shops()
    a1 = await s.agent("A1")
    await a1.online()
    conv = await queued(desk, "sol", f"goods:{s.goods_id}")
    assert await state(desk, conv) == ("agent", a1.id)
    agent = await a1.online(False)
    assert agent["online"] is False
    await desk.server.app[keys.SUPPORT].worker.sweep()
    assert await state(desk, conv) == ("queued", None)
