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
