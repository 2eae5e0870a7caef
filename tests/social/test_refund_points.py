"""Refunds reverse the purchase's points: in proportion, adding up, never more, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

from livecommerce import keys
from livecommerce.social import points
from tests.commerce.conftest import bearer
from tests.social.conftest import Social
from tests.support import http


async def _paid_order(social: Social, price_fen: int = 10_000) -> tuple[dict[str, Any], str, str]:
    """A paid order of ``price_fen`` (100 purchase points at 1 point a yuan), events applied:
    (order, buyer token, host token)."""
    host_id, host_token = await social.shop.host()
    gid = await social.shop.goods(host_id, stock=5, price_fen=price_fen)
    token = await social.shop.login()
    status, order = await social.shop.order(token, gid)
    assert status == 201, order
    await social.shop.pay(order)
    await social.settle()
    return order, token, host_token


async def _goodwill(
    social: Social, host_token: str, order_id: int, amount: int | None, key: str
) -> tuple[int, Any]:
    body: dict[str, Any] = {"reason": "dented box"}
    if amount is not None:
        body["amount_fen"] = amount
    return await http(
        "POST", f"{social.url}/api/host/orders/{order_id}/refunds", json=body,
        headers={**bearer(host_token), "Idempotency-Key": key},
    )  # fmt: skip


async def _balance(social: Social, token: str) -> int:
    status, body = await social.get("/api/points", token)
    assert status == 200, body
    value: int = body["balance"]
    return value


async def _reversals(social: Social, order_id: int) -> list[tuple[int, int]]:
    rows = await social.pool.fetch(
        """SELECT delta, shortfall FROM points_entries
           WHERE order_id = $1 AND kind = 'purchase_reversal' ORDER BY id""",
        order_id,
    )
    return [(r["delta"], r["shortfall"]) for r in rows]


async def _refunds_in(social: Social, order_id: int, status: str, count: int) -> None:
    for _ in range(300):
        n = await social.pool.fetchval(
            "SELECT count(*) FROM refunds WHERE order_id = $1 AND status = $2", order_id, status
        )
        if n >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} refunds of order {order_id} not {status}")


async def test_partial_refunds_reverse_points_in_proportion_once(social: Social) -> None:
    """30 % then 33.33 % then the rest: 30, 33, 37 points taken back (= the 100 credited);
    a replayed refund key, replayed refund notifications and a re-applied event take nothing."""
    order, token, host_token = await _paid_order(social)
    oid = order["id"]
    assert await _balance(social, token) == 100
    assert (await _goodwill(social, host_token, oid, 3000, "k1"))[0] == 201
    assert (await _goodwill(social, host_token, oid, 3000, "k1"))[0] == 200  # replayed key
    await social.settle()
    assert await _balance(social, token) == 70
    assert (await _goodwill(social, host_token, oid, 3333, "k2"))[0] == 201
    await social.settle()
    assert await _balance(social, token) == 37  # floor(100 x 6333 / 10000) = 63 taken in all
    # WeChat finishes both refunds; its notifications are replayed: nothing more is taken.
    await _refunds_in(social, oid, "processing", 2)
    status, _ = await http("POST", social.shop.fake_url + "/dev/refunds/settle", json={})
    assert status == 200
    await _refunds_in(social, oid, "success", 2)
    fake = social.app[keys.FAKE_WECHAT]
    for notice in list(fake.refund_notices):
        for _ in range(2):
            status, _ = await http(
                "POST", social.url + "/api/pay/wechat/refund-notify",
                data=notice["notify_body"].encode(), headers=notice["notify_headers"],
            )  # fmt: skip
            assert status == 200
    await social.settle()
    # The same refund's event applied again (a retried event) changes nothing either.
    first = await social.pool.fetchval("SELECT min(id) FROM refunds WHERE order_id = $1", oid)
    async with social.pool.acquire() as conn, conn.transaction():
        cfg = social.app[keys.SETTINGS].points
        assert await points.reverse_for_refund(conn, cfg, order["user_id"], oid, first) == 0
    assert await _balance(social, token) == 37
    assert await _reversals(social, oid) == [(-30, 0), (-33, 0)]
    # The rest: the order is refunded, the last reversal makes the sum exactly the credit.
    status, rest = await _goodwill(social, host_token, oid, None, "k3")
    assert (status, rest["amount_fen"]) == (201, 3667)
    await social.settle()
    assert await _balance(social, token) == 0
    assert await _reversals(social, oid) == [(-30, 0), (-33, 0), (-37, 0)]
    kinds = await social.pool.fetch(
        "SELECT kind, delta FROM points_entries WHERE order_id = $1 ORDER BY id", oid
    )
    assert sum(r["delta"] for r in kinds) == 0


async def test_refund_of_a_double_payment_takes_no_points(social: Social) -> None:
    """The order stays paid; refunding its second transaction reverses none of its points."""
    order, token, _ = await _paid_order(social)
    await social.shop.pay(order)  # a second transaction of the same order: refunded in full
    await social.settle()
    assert await social.pool.fetchval("SELECT count(*) FROM refunds") == 1
    assert await _balance(social, token) == 100
    assert await _reversals(social, order["id"]) == []


async def test_points_already_spent_are_a_shortfall_counted_once(social: Social) -> None:
    """The buyer spent 80 of the 100 points: a half refund takes the 20 left and records 30
    short; the rest owes 50 more, all short — the first shortfall is not owed again."""
    order, token, host_token = await _paid_order(social)
    host_id = await social.pool.fetchval("SELECT host_id FROM orders WHERE id = $1", order["id"])
    other = await social.shop.goods(host_id, stock=5, price_fen=10_000)
    status, spent = await social.post(
        "/api/points/checkout", token, {"goods_id": other, "quantity": 1, "points": 80}, "spend"
    )
    assert status == 201, spent
    assert await _balance(social, token) == 20
    assert (await _goodwill(social, host_token, order["id"], 5000, "half"))[0] == 201
    await social.settle()
    assert await _balance(social, token) == 0
    assert await _reversals(social, order["id"]) == [(-20, 30)]
    assert (await _goodwill(social, host_token, order["id"], None, "rest"))[0] == 201
    await social.settle()
    assert await _reversals(social, order["id"]) == [(-20, 30), (0, 50)]
    assert await _balance(social, token) == 0


async def _close_refunds(social: Social, order_id: int, count: int = 1) -> None:
    """WeChat Pay closes the order's processing refunds (the buyer is not paid back); the
    worker's query finds out (these orders were paid without a prepay: no notify URL)."""
    await _refunds_in(social, order_id, "processing", count)
    status, _ = await http(
        "POST", social.shop.fake_url + "/dev/refunds/settle", json={"status": "CLOSED"}
    )
    assert status == 200
    await social.pool.execute("UPDATE refunds SET next_attempt_at = now()")
    social.app[keys.REFUND_WORKER].poke()
    await _refunds_in(social, order_id, "closed", count)
    await social.settle()


async def _ledger(social: Social, order_id: int) -> list[tuple[str, int, int]]:
    rows = await social.pool.fetch(
        """SELECT kind, delta, shortfall FROM points_entries
           WHERE order_id = $1 AND kind <> 'purchase' ORDER BY id""",
        order_id,
    )
    return [(r["kind"], r["delta"], r["shortfall"]) for r in rows]


async def test_closed_refund_cancels_shortfall_first_then_gives_back_once(social: Social) -> None:
    """The buyer spent 80 of the 100 points; a full refund took the 20 left (80 short). WeChat
    closes it: the 80 short are cancelled (never taken), the 20 come back; the refund done
    again takes the same again."""
    order, token, host_token = await _paid_order(social)
    host_id = await social.pool.fetchval("SELECT host_id FROM orders WHERE id = $1", order["id"])
    other = await social.shop.goods(host_id, stock=5, price_fen=10_000)
    status, _ = await social.post(
        "/api/points/checkout", token, {"goods_id": other, "quantity": 1, "points": 80}, "spend"
    )
    assert status == 201
    assert (await _goodwill(social, host_token, order["id"], None, "all"))[0] == 201
    await social.settle()
    assert await _balance(social, token) == 0
    await _close_refunds(social, order["id"])
    assert await _balance(social, token) == 20
    assert await _ledger(social, order["id"]) == [
        ("purchase_reversal", -20, 80), ("purchase_restore", 20, 80)
    ]  # fmt: skip
    assert (await _goodwill(social, host_token, order["id"], None, "again"))[0] == 201
    await social.settle()
    assert await _balance(social, token) == 0
    assert (await _ledger(social, order["id"]))[-1] == ("purchase_reversal", -20, 80)


async def test_closed_full_refund_takes_back_the_restored_spend_once(social: Social) -> None:
    """An order paid partly with 50 points, refunded in full (50 restored, its 99 purchase
    points reversed), closed by WeChat (the order is paid again: 99 back, the 50 taken again),
    then refunded in full again (99 reversed, the 50 restored again): in the end the buyer
    holds exactly what the first order earned."""
    first, token, host_token = await _paid_order(social)
    host_id = await social.pool.fetchval("SELECT host_id FROM orders WHERE id = $1", first["id"])
    gid = await social.shop.goods(host_id, stock=5, price_fen=10_000)
    status, order = await social.post(
        "/api/points/checkout", token, {"goods_id": gid, "quantity": 1, "points": 50}, "spend50"
    )
    assert status == 201, order
    assert order["total_fen"] == 9950
    await social.shop.pay(order)
    await social.settle()
    assert await _balance(social, token) == 149  # 100 - 50 + 99
    oid = order["id"]
    assert (await _goodwill(social, host_token, oid, None, "all"))[0] == 201
    await social.settle()
    assert await _balance(social, token) == 100  # 99 reversed, 50 restored
    await _close_refunds(social, oid)
    assert await social.pool.fetchval("SELECT status FROM orders WHERE id = $1", oid) == "paid"
    assert await _balance(social, token) == 149  # 99 back, the 50 taken again
    assert await _ledger(social, oid) == [
        ("spend", -50, 0), ("purchase_reversal", -99, 0), ("spend_restore", 50, 0),
        ("purchase_restore", 99, 0), ("spend_restore_reversal", -50, 0),
    ]  # fmt: skip
    assert (await _goodwill(social, host_token, oid, None, "again"))[0] == 201
    await social.settle()
    assert await _balance(social, token) == 100
    assert (await _ledger(social, oid))[-2:] == [
        ("purchase_reversal", -99, 0), ("spend_restore", 50, 0)
    ]  # fmt: skip
    kinds = await social.pool.fetch("SELECT delta FROM points_entries WHERE order_id = $1", oid)
    assert sum(r["delta"] for r in kinds) == 0
