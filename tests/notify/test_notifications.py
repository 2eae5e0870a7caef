"""Order events reach the buyer: once on its open sockets, once as a WeChat subscribe message."""

from __future__ import annotations

import asyncio
from typing import Any

from livecommerce import keys
from livecommerce.devtools.fake_wechat import openid_for
from tests.commerce.conftest import Shop, bearer
from tests.realtime.conftest import World
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import http


async def wait_status(shop: Shop, kind: str, status: str) -> Any:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        row = await shop.pool.fetchrow("SELECT * FROM notifications WHERE kind = $1", kind)
        if row is not None and row["status"] == status:
            return row
        assert asyncio.get_running_loop().time() < deadline, row
        await asyncio.sleep(0.05)


async def test_paid_and_shipped_reach_socket_and_subscribe_message_once(
    shop: Shop, world: World
) -> None:
    """Paying (twice: a replayed notification) and shipping notify the buyer exactly once each."""
    token = await shop.login("buyer")
    v = TestViewer(shop.server.ws_url(), world.room_id, token)
    await v.connect()
    host_id, host_token = await shop.host()
    goods_id = await shop.goods(host_id, stock=5, price_fen=12345, title="Lipstick")
    status, order = await shop.order(token, goods_id)
    assert status == 201, order
    sent = await shop.pay(order)
    await shop.replay(sent)
    await wait_until(lambda: any(o.get("kind") == "order_paid" for o in v.others))
    paid = await wait_status(shop, "order_paid", "sent")
    status, body = await http(
        "POST", f"{shop.url}/api/host/orders/{order['id']}/ship",
        json={"carrier": "SF", "tracking_no": "SF123"}, headers=bearer(host_token),
    )  # fmt: skip
    assert status == 200, body
    await wait_until(lambda: any(o.get("kind") == "order_shipped" for o in v.others))
    await wait_status(shop, "order_shipped", "sent")
    await asyncio.sleep(0.3)
    notices = [o for o in v.others if o.get("type") == "notice" and o["kind"].startswith("order_")]
    assert [n["kind"] for n in notices] == ["order_paid", "order_shipped"]
    assert notices[0]["id"] == paid["id"]
    assert notices[0]["data"]["total_fen"] == 12345
    assert notices[1]["data"]["tracking_no"] == "SF123"
    fake = shop.server.app[keys.FAKE_WECHAT]
    mine = [
        m
        for m in fake.messages
        if m["kind"] == "subscribe" and m["touser"] == openid_for(fake.app_id, "buyer")
    ]
    assert len(mine) == 2
    assert mine[0]["data"]["amount2"] == {"value": "¥123.45"}
    assert (
        await shop.pool.fetchval("SELECT count(*) FROM notifications WHERE kind LIKE 'order_%'")
        == 2
    )
    # Paying also credited purchase points, announced once as well.
    assert (
        await shop.pool.fetchval("SELECT count(*) FROM notifications WHERE kind = 'points_changed'")
        == 1
    )
    await v.close()


async def test_refused_subscribe_message_fails_without_retry(shop: Shop) -> None:
    """A user who did not subscribe (errcode 43101): the notification fails at once, no retries."""
    token = await shop.login("refuse1")
    host_id, _ = await shop.host()
    goods_id = await shop.goods(host_id)
    _, order = await shop.order(token, goods_id)
    await shop.pay(order)
    row = await wait_status(shop, "order_paid", "failed")
    assert row["attempts"] == 1
    assert "43101" in row["last_error"]


async def test_unreachable_wechat_is_retried_with_backoff(shop: Shop) -> None:
    """A transient failure keeps the notification pending with a later next attempt."""
    token = await shop.login("buyer2")
    host_id, _ = await shop.host()
    goods_id = await shop.goods(host_id)
    _, order = await shop.order(token, goods_id)
    sender = shop.server.app[keys.NOTIFICATION_SENDER]
    good_url = sender.wechat.base_url
    sender.wechat.base_url = "http://127.0.0.1:1"
    try:
        await shop.pay(order)
        deadline = asyncio.get_running_loop().time() + 15
        while (
            row := await shop.pool.fetchrow("SELECT * FROM notifications WHERE kind = 'order_paid'")
        )["attempts"] < 1:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        assert row["status"] == "pending"
        assert row["next_attempt_at"] > row["created_at"]
    finally:
        sender.wechat.base_url = good_url


async def test_points_balance_change_reaches_the_users_socket(shop: Shop, world: World) -> None:
    """A check-in credits points once and the user's open socket hears the new balance once."""
    token = await shop.login("pointsfan")
    v = TestViewer(shop.server.ws_url(), world.room_id, token)
    await v.connect()
    for _ in range(2):  # the second check-in of the day credits nothing and notifies nothing
        await http(
            "POST",
            shop.url + "/api/points/actions",
            json={"action": "checkin"},
            headers=bearer(token),
        )
    await wait_until(lambda: any(o.get("kind") == "points_changed" for o in v.others))
    await wait_status(shop, "points_changed", "sent")
    await asyncio.sleep(0.3)
    notices = [o for o in v.others if o.get("kind") == "points_changed"]
    assert len(notices) == 1
    assert notices[0]["data"]["delta"] == notices[0]["data"]["balance"] > 0
    await v.close()


async def test_failed_group_tells_every_member_with_the_refund(shop: Shop, world: World) -> None:
    """A group that did not fill: the paying leader hears `group_failed` with the refund, the
    member who never paid hears it with the cancel — on the socket and as one subscribe
    message each (once, however often the expiry runs)."""
    host_id, host_token = await shop.host()
    goods_id = await shop.goods(host_id, stock=5, price_fen=5000, title="Tea set")
    status, offer = await http(
        "POST", shop.url + "/api/host/group-offers", headers=bearer(host_token),
        json={"goods_id": goods_id, "group_price_fen": 3000, "size": 3, "fill_seconds": 3600},
    )  # fmt: skip
    assert status == 201, offer
    leader, member = await shop.login("gleader"), await shop.login("gmember")
    sockets = {name: TestViewer(shop.server.ws_url(), world.room_id, tok)
               for name, tok in (("leader", leader), ("member", member))}  # fmt: skip
    for v in sockets.values():
        await v.connect()
    status, opened = await http(
        "POST", f"{shop.url}/api/group-offers/{offer['id']}/groups",  # type: ignore[index]
        headers={**bearer(leader), "Idempotency-Key": "open"},
    )  # fmt: skip
    assert status == 201, opened
    group_id = opened["group_id"]  # type: ignore[index]
    await shop.pay(opened["order"])  # type: ignore[index]
    group_url = f"{shop.url}/api/groups/{group_id}"
    for _ in range(300):  # the leader's payment opens the group (the social worker applies it)
        if await shop.pool.fetchval("SELECT status FROM groups WHERE id = $1", group_id) == "open":
            break
        await asyncio.sleep(0.05)
    status, joined = await http(
        "POST", group_url + "/join", headers={**bearer(member), "Idempotency-Key": "join"}
    )
    assert status == 201, joined
    await shop.pool.execute(
        "UPDATE groups SET expires_at = now() - interval '1 second' WHERE id = $1", group_id
    )
    shop.server.app[keys.SOCIAL_WORKER].poke()
    for v in sockets.values():
        await wait_until(lambda v=v: any(o.get("kind") == "group_failed" for o in v.others))
    shop.server.app[keys.SOCIAL_WORKER].poke()  # another pass finds nothing more to tell
    await wait_status(shop, "group_failed", "sent")
    await asyncio.sleep(0.3)
    told = {name: [o["data"] for o in v.others if o.get("kind") == "group_failed"]
            for name, v in sockets.items()}  # fmt: skip
    assert [(d["outcome"], d["refund_fen"]) for d in told["leader"]] == [("refunded", 3000)]
    assert [(d["outcome"], d["refund_fen"]) for d in told["member"]] == [("cancelled", 0)]
    assert told["leader"][0]["group_id"] == group_id
    fake = shop.server.app[keys.FAKE_WECHAT]
    template = shop.server.app[keys.SETTINGS].groups.failed_template_id
    await wait_until(lambda: sum(m.get("template_id") == template for m in fake.messages) == 2)
    sent = {m["touser"]: m["data"] for m in fake.messages if m.get("template_id") == template}
    assert sent[openid_for(fake.app_id, "gleader")]["amount2"] == {"value": "¥30.00"}
    assert sent[openid_for(fake.app_id, "gmember")]["thing4"] == {"value": "订单已取消"}
    # The leader's refund itself goes through WeChat Pay and is announced as well.
    await wait_until(
        lambda: any(o.get("kind") == "refund_started" for o in sockets["leader"].others)
    )
    for v in sockets.values():
        await v.close()
