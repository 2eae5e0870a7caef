"""The agents' WebSocket feed over real sockets: the hello snapshot, queue / conversation /
message frames as things change, presence kept by the socket across a reconnect (no offline
flap, nothing lost), an agent whose socket went away re-queued after the grace period and
reassigned to the other agent, who sees it live; another node's sockets hear it too."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from livecommerce import keys
from livecommerce.config import Settings
from livecommerce.support.feed import CHANNEL, Feed
from tests.support import http
from tests.support_cs.agentkit import HostShop, queued, state
from tests.support_cs.conftest import Desk

Shops = Callable[[], Awaitable[HostShop]]
LEASE, GRACE, SWEEP = 3.0, 1.0, 0.2


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Short leases so a disconnect is re-queued within seconds."""
    support = dataclasses.replace(
        settings.support, agent_lease_seconds=LEASE, agent_grace_seconds=GRACE,
        sweep_seconds=SWEEP,
    )  # fmt: skip
    return dataclasses.replace(settings, support=support)


async def test_full_hand_off_over_the_feed_with_two_agents(desk: Desk, shops: Shops) -> None:
    """Two agents (capacity 1) with their pages open: hand-offs are assigned least-busy first,
    a third waits in the queue (both see it), A2 (given a second seat) claims it, A1 closes
    theirs, A2 transfers to A1, the buyer writes (A1 sees it), A1's page goes away for good:
    after the lease and the grace period the conversation is re-queued and assigned to A2,
    whose socket shows it. Every step arrives as a frame."""
    s = await shops()
    a1, a2 = await s.agent("A1", capacity=1), await s.agent("A2", capacity=1)
    f1 = await a1.feed()
    f2 = await a2.feed()
    assert (f1.hello["agent"]["online"], f1.hello["queue"], f1.hello["mine"]) == (True, [], [])
    c1 = await queued(desk, "amy", f"goods:{s.goods_id}")
    await f2.next("conversation", id=c1, state="agent", agent_id=a1.id)
    c2 = await queued(desk, "ben", f"goods:{s.goods_id}")
    await f1.next("conversation", id=c2, state="agent", agent_id=a2.id)
    c3 = await queued(desk, "cat", f"goods:{s.goods_id}")
    for f in (f1, f2):
        frame = await f.next("conversation", id=c3, state="queued")
        assert frame["conversation"]["agent_id"] is None
    status, _ = await s.call("PATCH", f"/api/host/support/agents/{a2.id}", {"capacity": 2})
    assert status == 200
    status, body = await a2.conv(c3, "claim")
    assert status == 200, body
    frame = await f1.next("queue")  # a change sends the queue first, then the conversation
    assert frame["items"] == []
    await f1.next("conversation", id=c3, state="agent", agent_id=a2.id)
    status, _ = await a1.conv(c1, "close")
    assert status == 200
    await f2.next("conversation", id=c1, state="closed")
    status, body = await a2.conv(c3, "transfer", {"to_agent_id": a1.id})
    assert status == 200, body
    await f1.next("conversation", id=c3, state="agent", agent_id=a1.id)
    await desk.push(user="cat", type="text", content="where is my parcel?")
    msg = await f1.next("message", content="where is my parcel?")
    assert (msg["conversation_id"], msg["message"]["sender"]) == (c3, "buyer")
    status, body = await a1.conv(c3, "reply", {"text": "on its way"})
    assert status == 201, body
    await f2.next("message", content="on its way")
    await f1.close()  # A1's page is gone for good
    await asyncio.sleep(LEASE / 6)
    assert await state(desk, c3) == ("agent", a1.id)  # not yet: a refresh would be in time
    frame = await f2.next("conversation", within=LEASE + GRACE + 10, id=c3, agent_id=a2.id)
    assert frame["conversation"]["state"] == "agent"
    moves = await desk.pool.fetch(
        "SELECT from_state, to_state, reason FROM support_transitions WHERE openid = $1 "
        "ORDER BY id", desk.openid("cat"),
    )  # fmt: skip
    assert [(m["from_state"], m["to_state"], m["reason"].split(" from")[0]) for m in moves] == [
        ("bot", "queued", "asked"),
        ("queued", "agent", "claimed"),
        ("agent", "agent", "transfer"),
        ("agent", "queued", "agent away"),
        ("queued", "agent", "assigned"),
    ]
    await f2.close()


async def _online(desk: Desk, agent_id: int) -> bool:
    return bool(await desk.pool.fetchval(
        "SELECT online_until > now() FROM support_agents WHERE id = $1", agent_id
    ))  # fmt: skip


async def test_reconnect_keeps_presence_and_conversations(desk: Desk, shops: Shops) -> None:
    """A page refresh (close, reconnect at once) several times over more than lease + grace:
    the agent never goes offline, keeps the conversation, and each hello lists it."""
    s = await shops()
    a1 = await s.agent("A1", capacity=1)
    feed = await a1.feed()
    conv = await queued(desk, "cat", f"goods:{s.goods_id}")
    await feed.next("conversation", id=conv, agent_id=a1.id)
    for _ in range(4):
        await asyncio.sleep(LEASE * 0.6)
        await feed.close()
        feed = await a1.feed()
        assert [c["id"] for c in feed.hello["mine"]] == [conv]
        assert feed.hello["agent"]["online"] is True
        assert await _online(desk, a1.id)
    assert await state(desk, conv) == ("agent", a1.id)
    assert await desk.pool.fetchval(
        "SELECT count(*) FROM support_transitions WHERE reason = 'agent away'"
    ) == 0  # fmt: skip
    await feed.close()


async def test_another_nodes_socket_hears_the_change(
    desk: Desk,
    shops: Shops,
    make_server: Any,
) -> None:
    """An agent whose socket is on node 2 gets a hand-off processed (and assigned) by node 1."""
    s = await shops()
    node2 = await make_server()
    a1 = await s.agent("A1")
    a1.url = node2.url
    feed = await a1.feed()
    conv = await queued(desk, "dot", f"goods:{s.goods_id}")  # pushed to node 1
    await feed.next("conversation", id=conv, state="agent", agent_id=a1.id)
    await feed.close()


async def test_feed_refuses_bad_callers(desk: Desk, shops: Shops) -> None:
    """No session 401; plain HTTP 400 ``websocket_expected``; another origin 403; a host token
    403."""
    s = await shops()
    ann = await s.agent("Ann")
    url = desk.shop.url + "/api/agent/feed"
    async with aiohttp.ClientSession() as anon:
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await anon.ws_connect(url)
        assert exc.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await anon.ws_connect(url, headers={"Authorization": f"Bearer {s.token}"})
        assert exc.value.status == 403
    status, body = await ann.call("GET", "/api/agent/feed")
    assert (status, body["error"]["code"]) == (400, "websocket_expected")
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await ann.feed(origin="https://evil.example")
    assert exc.value.status == 403
    feed = await ann.feed(origin=desk.shop.url)
    await feed.ws.send_str('{"type":"ping"}')
    await feed.next("pong")
    await feed.close()


async def test_every_frame_from_the_page_is_parsed_and_answered(desk: Desk, shops: Shops) -> None:
    """A ping is JSON, not a string: with spaces, newlines, other key order or extra fields it
    gets its pong; a frame that is not JSON, not an object with a string type, of another type
    or binary gets the documented ``error`` frame — never silence — and the socket stays
    open."""
    s = await shops()
    feed = await (await s.agent("Ann")).feed()
    for ping in ('{"type": "ping"}', ' {\n "type" : "ping" }\n', '{"t": 7, "type":"ping"}'):
        await feed.ws.send_str(ping)
        await feed.next("pong", within=5)
    for bad, code in (
        ("ping", "bad_json"),
        ('{"type": "ping"', "bad_json"),
        ("", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('"ping"', "bad_message"),
        ("{}", "bad_message"),
        ('{"type": 5}', "bad_message"),
        ('{"type": "pong"}', "unknown_type"),
        ('{"type": "PING"}', "unknown_type"),
    ):
        await feed.ws.send_str(bad)
        error = await feed.next("error", within=5)
        assert (error["code"], bool(error["message"])) == (code, True), (bad, error)
    await feed.ws.send_bytes(b'{"type": "ping"}')
    error = await feed.next("error", within=5)
    assert error["code"] == "binary_not_supported"
    await feed.ws.send_str('{ "type": "ping" }')  # still open, still answering
    await feed.next("pong", within=5)
    assert not [f for f in feed.seen if f["type"] == "pong" and set(f) != {"type"}]
    await feed.ws.send_str('{"type": "ping", "pad": "' + "x" * 5000 + '"}')  # over 4 KiB
    msg = await feed.ws.receive(timeout=5)
    while msg.type == aiohttp.WSMsgType.TEXT:
        msg = await feed.ws.receive(timeout=5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1009), msg
    await feed.close()


async def test_the_fate_of_a_reply_reaches_the_feed(desk: Desk, shops: Shops) -> None:
    """An agent's reply that WeChat refuses (45047) shows as ``refused`` in a message frame; a
    sent one as ``sent``."""
    s = await shops()
    a1 = await s.agent("A1")
    feed = await a1.feed()
    conv = await queued(desk, "ray", f"goods:{s.goods_id}")
    await feed.next("conversation", id=conv, agent_id=a1.id)
    status, _ = await a1.conv(conv, "reply", {"text": "first answer"})
    assert status == 201
    await feed.next("message", content="first answer", state="sent")
    status, _ = await http("POST", desk.shop.fake_url + "/dev/support/fail",
                           json={"openid": desk.openid("ray"), "errcode": 45047})  # fmt: skip
    assert status == 200
    status, _ = await a1.conv(conv, "reply", {"text": "second answer"})
    assert status == 201
    frame = await feed.next("message", content="second answer", state="refused")
    assert frame["conversation_id"] == conv
    await feed.close()


async def test_feed_stops_whenever_it_is_cancelled(desk: Desk) -> None:
    """Cancelled at random points (mostly while blocked on its subscription, sometimes while
    events arrive), a node's feed always stops within a few seconds. redis-py can swallow a
    cancel on Python 3.11; a read loop that did not check for it hung a shutdown in CI."""
    app = desk.server.app
    redis = app[keys.REDIS]
    stuck = 0
    for i in range(120):
        feed = Feed(app[keys.PG_POOL], redis, LEASE)
        task = asyncio.create_task(feed.run())
        if i % 2:  # half the time: cancel while messages are flowing
            await asyncio.wait_for(feed.listening.wait(), 5)
            for _ in range(3):
                await redis.publish(CHANNEL, b'{"h": -1, "k": "agents"}')
        await asyncio.sleep(random.random() * 0.03)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        if not done:
            stuck += 1
            task.cancel()
            await asyncio.wait([task], timeout=5)
    assert stuck == 0
