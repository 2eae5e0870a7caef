"""Group buying: open, join, succeed with one notification per member, fail with refunds."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from typing import Any

from livecommerce import keys
from livecommerce.auth.tokens import issue_token
from livecommerce.commerce.payments import Transaction, apply_transaction
from livecommerce.config import DEV_SECRET
from livecommerce.errors import Conflict
from livecommerce.social import events, groups
from tests.social.conftest import Social


async def _offer(social: Social, size: int = 3, stock: int = 1000) -> tuple[int, int]:
    host_id, host_token = await social.shop.host()
    goods_id = await social.shop.goods(host_id, stock=stock, price_fen=5000, title="Tea set")
    status, offer = await social.post(
        "/api/host/group-offers", host_token,
        {"goods_id": goods_id, "group_price_fen": 3000, "size": size, "fill_seconds": 3600},
    )  # fmt: skip
    assert status == 201, offer
    return offer["id"], goods_id


async def _open_paid(social: Social, offer_id: int) -> tuple[int, str]:
    _, token = await social.user()
    status, opened = await social.post(f"/api/group-offers/{offer_id}/groups", token, None, "open")
    assert status == 201, opened
    await social.shop.pay(opened["order"])
    await social.settle()
    return opened["group_id"], token


async def _outbox_drained(social: Any) -> None:
    """Wait until no group-success notification is pending in the outbox."""
    for _ in range(750):
        pending = await social.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE kind = 'group_succeeded' AND status = 'pending'"
        )
        if not pending:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("group-success notifications still pending")


async def _messages(social: Social) -> list[dict[str, Any]]:
    """Group-success subscribe messages the fake WeChat received."""
    template = social.app[keys.SETTINGS].groups.success_template_id
    return [m for m in social.app[keys.FAKE_WECHAT].messages if m["template_id"] == template]


async def test_group_fills_and_notifies_every_member_once(social: Social) -> None:
    """Leader pays (open), two join and pay: succeeded, one subscribe message per member."""
    offer_id, goods_id = await _offer(social)
    group_id, _ = await _open_paid(social, offer_id)
    _, listed = await social.get(f"/api/goods/{goods_id}/groups")
    assert [g["id"] for g in listed["items"]] == [group_id]
    joined = []
    for _ in range(2):
        _, token = await social.user()
        status, body = await social.post(f"/api/groups/{group_id}/join", token, None, "j")
        assert status == 201, body
        assert body["order"]["total_fen"] == 3000
        joined.append(body["order"])
    status, group = await social.get(f"/api/groups/{group_id}")
    assert (group["status"], group["seats_left"], group["paid_members"]) == ("open", 0, 1)
    assert group["seconds_left"] > 0
    assert len(group["members"]) == 3
    assert group["members"][0]["avatar_url"].startswith("https://")
    for order in joined:
        sent = await social.shop.pay(order)
        await social.shop.replay(sent)  # a replayed notification counts once
    await social.settle()
    _, group = await social.get(f"/api/groups/{group_id}")
    assert (group["status"], group["paid_members"]) == ("succeeded", 3)
    await _outbox_drained(social)
    msgs = await _messages(social)
    assert len(msgs) == 3
    assert len({m["touser"] for m in msgs}) == 3
    assert msgs[0]["data"]["amount2"] == {"value": "¥30.00"}
    await social.app[keys.NOTIFICATION_SENDER].send_due()  # another pass sends nothing again
    assert len(await _messages(social)) == 3
    notices = await social.pool.fetchval(
        "SELECT count(*) FROM notifications WHERE kind = 'group_succeeded'"
    )
    assert notices == 3


async def test_join_refusals(social: Social) -> None:
    """Unknown, unpaid-leader, full, already-joined and expired groups refuse with clear codes."""
    offer_id, _ = await _offer(social, size=2)
    _, token = await social.user()
    assert (await social.post("/api/groups/999/join", token, None, "x"))[0] == 404
    _, pending = await social.post(f"/api/group-offers/{offer_id}/groups", token, None, "p")
    _, someone = await social.user()
    status, _ = await social.post(f"/api/groups/{pending['group_id']}/join", someone, None, "x")
    assert status == 404  # not joinable (nor visible) until the leader pays
    group_id, leader = await _open_paid(social, offer_id)
    code = (await social.post(f"/api/groups/{group_id}/join", leader, None, "again"))[1]
    assert code["error"]["code"] == "already_joined"
    _, u1 = await social.user()
    assert (await social.post(f"/api/groups/{group_id}/join", u1, None, "a"))[0] == 201
    _, u2 = await social.user()
    status, body = await social.post(f"/api/groups/{group_id}/join", u2, None, "a")
    assert (status, body["error"]["code"]) == (409, "group_full")
    other_id, _ = await _open_paid(social, offer_id)
    await social.pool.execute(
        "UPDATE groups SET expires_at = now() - interval '1 second' WHERE id = $1", other_id
    )
    status, body = await social.post(f"/api/groups/{other_id}/join", u2, None, "b")
    assert (status, body["error"]["code"]) == (409, "group_expired")


async def test_expired_group_fails_and_refunds_every_payer(social: Social) -> None:
    """An unfilled group past its time fails: paid orders refunded, unpaid ones cancelled."""
    offer_id, goods_id = await _offer(social, size=3, stock=10)
    group_id, _ = await _open_paid(social, offer_id)
    _, t1 = await social.user()
    _, j1 = await social.post(f"/api/groups/{group_id}/join", t1, None, "k")
    _, t2 = await social.user()
    _, j2 = await social.post(f"/api/groups/{group_id}/join", t2, None, "k")
    await social.shop.pay(j1["order"])
    await social.settle()
    await social.pool.execute(
        "UPDATE groups SET expires_at = now() - interval '1 second' WHERE id = $1", group_id
    )
    failed = await asyncio.gather(*(groups.expire_due(social.pool, 10) for _ in range(3)))
    # At most one sweep fails it (the app's own worker, mid-pass, may have been first).
    assert [gid for batch in failed for gid in batch] in ([group_id], [])
    for _ in range(250):
        if await social.pool.fetchval("SELECT status FROM groups WHERE id = $1", group_id) == (
            "failed"
        ):
            break
        await asyncio.sleep(0.02)
    await social.settle()
    rows = await social.pool.fetch(
        "SELECT o.status FROM group_members m JOIN orders o ON o.id = m.order_id"
        " WHERE m.group_id = $1 ORDER BY o.id", group_id,
    )  # fmt: skip
    assert [r["status"] for r in rows] == ["refunded", "refunded", "cancelled"]
    outcomes = await social.pool.fetch("SELECT outcome FROM payments ORDER BY received_at")
    assert [r["outcome"] for r in outcomes] == ["refund_required", "refund_required"]
    assert await social.shop.stock(goods_id) == 10
    # The unpaid member pays late: refunded too, and the group stays failed.
    await social.shop.pay(j2["order"])
    await social.settle()
    assert (
        await social.pool.fetchval("SELECT status FROM orders WHERE id = $1", j2["order"]["id"])
        == "refunded"
    )
    assert (await social.get(f"/api/groups/{group_id}"))[1]["status"] == "failed"


async def test_thousand_concurrent_joins_never_overfill(social: Social) -> None:
    """1,000 concurrent joins on 60 groups of 3, racing payments, workers and expiry on 3
    'nodes': no group over 3 paid, one message per member, every failed payer refunded."""
    settings = social.app[keys.SETTINGS]
    offer_id, goods_id = await _offer(social, size=3, stock=100_000)
    opened = []
    for _ in range(60):
        uid, _ = await social.user()
        async with social.pool.acquire() as conn:
            res, _ = await groups.open_group(conn, settings.groups, user_id=uid,
                                             offer_id=offer_id, idempotency_key="o",
                                             payment_timeout_seconds=900)  # fmt: skip
        opened.append(res)
    payer_ids = [await social.user() for _ in range(400)]
    await asyncio.gather(*(_pay(social, r["order"]) for r in opened))
    await social.settle()
    group_ids = [r["group_id"] for r in opened]
    rng = random.Random(8)

    async def join(uid: int) -> dict[str, Any] | str:
        async with social.pool.acquire() as conn:
            try:
                res, _ = await groups.join_group(
                    conn, settings.groups, user_id=uid, group_id=rng.choice(group_ids),
                    idempotency_key=secrets.token_hex(6), payment_timeout_seconds=900,
                )  # fmt: skip
                return res
            except Conflict as exc:
                return exc.code

    attempts = [payer_ids[i % len(payer_ids)][0] for i in range(1000)]
    results = await asyncio.gather(*(join(uid) for uid in attempts))
    joined = [r for r in results if isinstance(r, dict)]
    assert Counter(r for r in results if isinstance(r, str)).keys() <= {
        "group_full", "already_joined", "already_in_group"}  # fmt: skip
    assert await social.pool.fetchval("SELECT max(seats) FROM groups") <= 3
    # Pay ~80% of the joins (some twice, with different transaction ids), while three
    # "nodes" apply events concurrently.
    to_pay = [r["order"] for r in joined if rng.random() < 0.8]
    dup = to_pay[: len(to_pay) // 5]
    await asyncio.gather(
        *(_pay(social, o) for o in to_pay + dup),
        *(events.drain(social.pool, social.deps) for _ in range(3)),
    )
    await social.settle()
    assert await social.pool.fetchval("SELECT max(paid) FROM groups") <= 3
    over = await social.pool.fetchval(
        """SELECT count(*) FROM (SELECT group_id FROM group_members m JOIN orders o
           ON o.id = m.order_id WHERE o.status = 'paid' GROUP BY group_id
           HAVING count(*) > 3) x"""
    )
    assert over == 0
    succeeded = await social.pool.fetchval("SELECT count(*) FROM groups WHERE status = 'succeeded'")
    assert succeeded > 0
    # Three "nodes" send the outbox at once (SKIP LOCKED), besides the app's own sender.
    sender = social.app[keys.NOTIFICATION_SENDER]
    await asyncio.gather(*(sender.send_due() for _ in range(3)))
    await _outbox_drained(social)
    msgs = await _messages(social)
    assert len(msgs) == succeeded * 3
    assert len({(m["touser"], m["page"]) for m in msgs}) == len(msgs)
    # Everything still open expires now; three nodes sweep at once.
    await social.pool.execute("UPDATE groups SET expires_at = now() WHERE status = 'open'")
    await asyncio.gather(*(groups.expire_due(social.pool, 1000) for _ in range(3)))
    await social.settle()
    lost = await social.pool.fetchval(
        """SELECT count(*) FROM group_members m JOIN groups g ON g.id = m.group_id
           JOIN orders o ON o.id = m.order_id
           WHERE g.status = 'failed' AND o.status NOT IN ('refunded', 'cancelled')"""
    )
    assert lost == 0
    unrefunded = await social.pool.fetchval(
        """SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id
           WHERE o.status = 'refunded' AND p.outcome <> 'refund_required'"""
    )
    assert unrefunded == 0
    paid_succeeded = await social.pool.fetchval(
        """SELECT count(*) FROM group_members m JOIN groups g ON g.id = m.group_id
           JOIN orders o ON o.id = m.order_id WHERE g.status = 'succeeded' AND o.status = 'paid'"""
    )
    assert paid_succeeded == succeeded * 3
    held = await social.pool.fetchval(
        "SELECT count(*) FROM orders WHERE status IN ('pending_payment', 'paid')"
    )
    assert await social.shop.stock(goods_id) == 100_000 - held


async def _pay(social: Social, order: dict[str, Any]) -> None:
    txn = Transaction(order_id=order["id"], transaction_id="42" + secrets.token_hex(10),
                      trade_state="SUCCESS", total_fen=order["total_fen"], payer_openid="o",
                      success_time="")  # fmt: skip
    async with social.pool.acquire() as conn:
        await apply_transaction(conn, txn)


async def test_group_state_is_visible_when_the_last_payment_is_answered(social: Social) -> None:
    """Read-your-payment: once WeChat's notification is answered, GET shows the group filled."""
    offer_id, _ = await _offer(social, size=2)
    _, token = await social.user()
    status, opened = await social.post(f"/api/group-offers/{offer_id}/groups", token, None, "o")
    assert status == 201, opened
    sent = await social.shop.pay(opened["order"])
    assert sent["notify_status"] == 200
    group_id = opened["group_id"]
    _, token2 = await social.user()
    status, joined = await social.post(f"/api/groups/{group_id}/join", token2, None, "j")
    assert status == 201, joined
    sent = await social.shop.pay(joined["order"])  # no settle(): no waiting on the worker
    assert sent["notify_status"] == 200
    _, group = await social.get(f"/api/groups/{group_id}")
    assert (group["status"], group["paid_members"]) == ("succeeded", 2)


async def test_member_refund_closed_by_wechat_is_a_paid_member_again(social: Social) -> None:
    """A host refunds a member of a succeeded group in full and WeChat Pay closes the refund:
    the order is paid again and so is the member — and that move back is no "late payment"
    (it would have been refunded again as `group_closed`)."""
    offer_id, _ = await _offer(social, size=2)
    group_id, _ = await _open_paid(social, offer_id)
    _, token = await social.user()
    status, body = await social.post(f"/api/groups/{group_id}/join", token, None, "j")
    assert status == 201, body
    order = body["order"]
    await social.shop.pay(order)
    await social.settle()
    host_id = await social.pool.fetchval("SELECT host_id FROM orders WHERE id = $1", order["id"])
    host_token = issue_token(DEV_SECRET, "host", host_id, 3600)
    status, refund = await social.post(
        f"/api/host/orders/{order['id']}/refunds", host_token, {}, "goodwill"
    )
    assert status == 201, refund
    await social.settle()
    member = "SELECT status FROM group_members WHERE order_id = $1"
    assert await social.pool.fetchval(member, order["id"]) == "refunded"
    for _ in range(200):
        if await social.pool.fetchval("SELECT status FROM refunds") == "processing":
            break
        await asyncio.sleep(0.05)
    worker = social.app[keys.REFUND_WORKER]
    assert await worker.apply(refund["id"], {"status": "CLOSED"}, order_id=order["id"])
    await social.settle()
    assert await social.pool.fetchval("SELECT status FROM orders WHERE id = $1", order["id"]) == (
        "paid"
    )
    assert await social.pool.fetchval(member, order["id"]) == "paid"
    assert await social.pool.fetchval("SELECT count(*) FROM refunds") == 1
    _, group = await social.get(f"/api/groups/{group_id}")
    assert (group["status"], group["paid_members"]) == ("succeeded", 2)
