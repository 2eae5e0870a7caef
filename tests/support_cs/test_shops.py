"""Shops are private to each other: a conversation belongs to the shop the chat is about, and an
agent of another shop gets 404 for everything about it. How the shop is derived, and the
unscoped fallback (the admin's queue, or support.default_host_id)."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from livecommerce.config import Settings
from tests.commerce.conftest import bearer
from tests.support import http
from tests.support_cs.agentkit import HostShop, queued, state
from tests.support_cs.conftest import Desk

Shops = Callable[[], Awaitable[HostShop]]


async def shop_of(desk: Desk, conv_id: int) -> int | None:
    host: int | None = await desk.pool.fetchval(
        "SELECT host_id FROM support_conversations WHERE id = $1", conv_id
    )
    return host


async def test_another_shops_agent_gets_404_for_everything(desk: Desk, shops: Shops) -> None:
    """Shop B's agent cannot list, read, claim, reply to, transfer or close shop A's
    conversation, nor transfer to A's agent; B's queue and host view stay empty."""
    a, b = await shops(), await shops()
    conv = await queued(desk, "amy", f"goods:{a.goods_id}")
    assert await shop_of(desk, conv) == a.id
    mine, theirs = await a.agent("Ann"), await b.agent("Bob")
    await theirs.online()  # online and free: still nothing of shop A is assigned to them
    assert await state(desk, conv) == ("queued", None)
    assert (await theirs.call("GET", "/api/agent/queue"))[1]["items"] == []
    assert (await b.call("GET", "/api/host/support/queue"))[1]["items"] == []
    for method, path, body in (
        ("GET", f"/api/agent/conversations/{conv}", None),
        ("POST", f"/api/agent/conversations/{conv}/claim", None),
        ("POST", f"/api/agent/conversations/{conv}/reply", {"text": "hi"}),
        ("POST", f"/api/agent/conversations/{conv}/transfer", {"to_agent_id": mine.id}),
        ("POST", f"/api/agent/conversations/{conv}/close", None),
    ):
        status, answer = await theirs.call(method, path, body)
        assert status == 404, (path, answer)
    missing = conv + 1000
    status, answer = await theirs.call("GET", f"/api/agent/conversations/{missing}")
    assert status == 404  # the same answer as a conversation that does not exist
    await mine.online()
    assert await state(desk, conv) == ("agent", mine.id)
    status, _ = await mine.conv(conv, "transfer", {"to_agent_id": theirs.id})
    assert status == 404  # an agent of another shop is not a transfer target
    status, listed = await theirs.call("GET", "/api/agent/agents")
    assert [x["id"] for x in listed["items"]] == [theirs.id]
    status, _ = await b.call("PATCH", f"/api/host/support/agents/{mine.id}", {"capacity": 3})
    assert status == 404


async def test_the_shop_follows_the_chat(desk: Desk, shops: Shops) -> None:
    """A room's SessionFrom, a goods card and the buyer's own order each set the shop; another
    buyer's order number sets nothing; the shop is frozen while an agent holds it."""
    a, b = await shops(), await shops()
    status, room = await a.call("POST", "/api/rooms", {"title": "Live"})
    assert status == 201, room
    conv = await queued(desk, "rob", f"room:{room['id']}")
    assert await shop_of(desk, conv) == a.id
    ann = await a.agent("Ann")
    await ann.conv(conv, "claim")
    await desk.push(user="rob", type="miniprogrampage", title="scarf",
                    page_path=f"pages/goods/goods?id={b.goods_id}")  # fmt: skip
    await desk.settled()
    assert await shop_of(desk, conv) == a.id  # frozen while held
    await ann.conv(conv, "close")
    await desk.push(user="rob", type="miniprogrampage", title="scarf",
                    page_path=f"pages/goods/goods?id={b.goods_id}")  # fmt: skip
    await desk.settled()
    assert await shop_of(desk, conv) == b.id  # a goods card of shop B
    # Someone else's order of shop A: the bot says "not found" and the shop does not move.
    other = await desk.shop.login("someone")
    status, order = await desk.shop.order(other, a.goods_id)
    assert status == 201, order
    await desk.push(user="rob", type="text", content=f"订单 {order['id']}")
    await desk.settled()
    assert await shop_of(desk, conv) == b.id
    # Rob's own order of shop A does.
    token = await desk.shop.login("rob")
    status, own = await desk.shop.order(token, a.goods_id)
    assert status == 201, own
    await desk.push(user="rob", type="text", content=f"order #{own['id']}")
    await desk.settled()
    assert await shop_of(desk, conv) == a.id


async def _tap(desk: Desk, token: str, goods_id: int) -> None:
    status, body = await http("POST", desk.shop.url + "/api/events", headers=bearer(token), json={
        "events": [{"id": str(uuid.uuid4()), "type": "goods_detail_view", "goods_id": goods_id}],
    })  # fmt: skip
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["stored"] == 1, body


async def test_no_context_falls_back_to_taps_then_orders(desk: Desk, shops: Shops) -> None:
    """A hand-off with nothing in the chat takes the shop of the goods the buyer last tapped,
    else of their latest order; the agents see those goods and orders (of their shop only)."""
    a, b = await shops(), await shops()
    token = await desk.shop.login("tim")
    await desk.shop.order(token, b.goods_id)
    await _tap(desk, token, a.goods_id)
    await desk.push(user="tim", type="text", content="human please")
    await desk.settled()
    conv = await desk.pool.fetchval(
        "SELECT id FROM support_conversations WHERE openid = $1", desk.openid("tim")
    )
    assert await shop_of(desk, conv) == a.id  # the tap is the latest signal
    ann = await a.agent("Ann")
    status, hist = await ann.call("GET", f"/api/agent/conversations/{conv}")
    assert status == 200
    assert [g["id"] for g in hist["goods"]] == [a.goods_id]
    assert hist["orders"] == []  # Tim's order is shop B's: not shown to shop A
    token2 = await desk.shop.login("ola")
    status, order = await desk.shop.order(token2, b.goods_id)
    await desk.push(user="ola", type="text", content="agent")
    await desk.settled()
    conv2 = await desk.pool.fetchval(
        "SELECT id FROM support_conversations WHERE openid = $1", desk.openid("ola")
    )
    assert await shop_of(desk, conv2) == b.id
    bob = await b.agent("Bob")
    status, hist = await bob.call("GET", f"/api/agent/conversations/{conv2}")
    assert [o["id"] for o in hist["orders"]] == [order["id"]]


async def test_unscoped_goes_to_the_admin_then_to_a_shop(
    desk: Desk,
    shops: Shops,
    make_server: Any,
    settings: Settings,
) -> None:
    """No shop derivable: no shop's agent sees it; the admin lists it and gives it to a shop,
    whose online agent gets it. With support.default_host_id it goes to that shop at once."""
    a = await shops()
    ann = await a.agent("Ann")
    await ann.online()
    await desk.push(user="nob", type="text", content="人工")
    await desk.settled()
    conv = await desk.pool.fetchval(
        "SELECT id FROM support_conversations WHERE openid = $1", desk.openid("nob")
    )
    assert await state(desk, conv) == ("queued", None)
    assert await shop_of(desk, conv) is None
    assert (await ann.call("GET", "/api/agent/queue"))[1]["items"] == []
    admin_token = "admin-" + secrets.token_hex(8)
    security = dataclasses.replace(settings.security, admin_token=admin_token)
    support = dataclasses.replace(settings.support, default_host_id=a.id)
    server = await make_server(dataclasses.replace(settings, security=security, support=support))
    admin = bearer(admin_token)
    status, listed = await http("GET", server.url + "/api/admin/support/unscoped", headers=admin)
    assert status == 200
    assert [c["id"] for c in listed["items"]] == [conv]  # type: ignore[index]
    status, _ = await http(
        "GET", server.url + "/api/admin/support/unscoped", headers=bearer(a.token)
    )
    assert status == 401
    path = f"/api/admin/support/conversations/{conv}/shop"
    status, moved = await http("POST", server.url + path, json={"host_id": a.id}, headers=admin)
    assert status == 200, moved
    assert await state(desk, conv) == ("agent", ann.id)
    status, _again = await http("POST", server.url + path, json={"host_id": a.id}, headers=admin)
    assert status == 409
    # The second node has default_host_id: a context-free hand-off pushed to it goes to shop A.
    await desk.push(url=server.url + "/api/support/wechat/push", user="dan", type="text",
                    content="人工")  # fmt: skip
    await desk.settled()
    conv2 = await desk.pool.fetchval(
        "SELECT id FROM support_conversations WHERE openid = $1", desk.openid("dan")
    )
    assert await shop_of(desk, conv2) == a.id
