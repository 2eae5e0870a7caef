"""Social commerce tried as a new user (break5): replays and hidden goods."""

from __future__ import annotations

import asyncio
import secrets

from livecommerce import keys
from tests.social.conftest import Social
from tests.social.test_flashsale import _buy, _sale
from tests.social.test_groups import _offer, _open_paid
from tests.social.test_points import _grant


async def test_points_checkout_replay_answers_the_first_order_after_a_price_drop(
    social: Social,
) -> None:
    """A replayed points checkout answers the first order even when the goods' price has
    dropped since (the discount cap is the first order's, not today's)."""
    uid, token = await social.user()
    await _grant(social, uid, 1000)
    host_id, _ = await social.shop.host()
    gid = await social.shop.goods(host_id, stock=10, price_fen=10_000)
    key = secrets.token_hex(6)
    body = {"goods_id": gid, "quantity": 1, "points": 100}
    status, first = await social.post("/api/points/checkout", token, body, key)
    assert status == 201, first
    await social.pool.execute("UPDATE goods SET price_fen = 100 WHERE id = $1", gid)
    status, again = await social.post("/api/points/checkout", token, body, key)
    assert status == 200, again
    assert again["id"] == first["id"]
    assert again["points_spent"] == 100


async def test_points_checkout_of_a_draft_does_not_tell_its_price(social: Social) -> None:
    """A draft (or unknown) goods is 404 whatever the points: the 400 naming the points cap
    would tell its price."""
    _, token = await social.user()
    host_id, _ = await social.shop.host()
    gid = await social.shop.goods(host_id, stock=10, price_fen=10_000, status="draft")
    body = {"goods_id": gid, "quantity": 1, "points": 10**9}
    status, answer = await social.post("/api/points/checkout", token, body, secrets.token_hex(6))
    assert status == 404, answer


async def test_flash_sale_replay_after_the_end_answers_the_first_order(social: Social) -> None:
    """A buyer whose answer was lost retries with the same Idempotency-Key after the sale has
    ended: 200 with the first order (docs/api.md), not 409 `ended`."""
    sale_id, _, _ = await _sale(social, stock=5, limit=1, start=-5, end=1.5)
    _, token = await social.user()
    key = secrets.token_hex(8)
    status, first = await _buy(social, sale_id, token, key)
    assert status == 201, first
    await asyncio.sleep(2)
    status, again = await _buy(social, sale_id, token, key)
    assert status == 200, again
    assert again["id"] == first["id"]


async def test_flash_buy_with_the_key_of_a_plain_order_of_the_same_goods_is_refused(
    social: Social,
) -> None:
    """An Idempotency-Key first used for a plain order of the sale's own goods is a 409
    `idempotency_key_reused` on the sale, not that full-price order answered as the purchase."""
    sale_id, goods_id, _ = await _sale(social, stock=5, limit=1)
    _, token = await social.user()
    status, plain = await social.post(
        "/api/orders", token, {"goods_id": goods_id, "quantity": 1}, "k-same"
    )
    assert status == 201, plain
    status, body = await _buy(social, sale_id, token, key="k-same")
    assert (status, body.get("error", {}).get("code")) == (409, "idempotency_key_reused"), body
    assert await social.app[keys.FLASH_STOCK].stock_left(sale_id) == 5


async def test_groups_of_a_draft_are_not_public(social: Social) -> None:
    """Goods moved back to a draft: its offer is a 404 (docs/api.md), and so are its groups —
    by id and in the goods' open-group list."""
    offer_id, goods_id = await _offer(social, size=3)
    group_id, _ = await _open_paid(social, offer_id)
    assert (await social.get(f"/api/groups/{group_id}"))[0] == 200
    await social.pool.execute("UPDATE goods SET status = 'draft' WHERE id = $1", goods_id)
    assert (await social.get(f"/api/group-offers/{offer_id}"))[0] == 404
    status, listed = await social.get(f"/api/goods/{goods_id}/groups")
    assert status == 404 or listed.get("items", listed) == [], listed
    status, body = await social.get(f"/api/groups/{group_id}")
    assert status == 404, body


async def test_points_checkout_with_the_key_of_a_flash_purchase_is_refused(social: Social) -> None:
    """The Idempotency-Key of a flash-sale purchase of the same goods is 409
    `idempotency_key_reused` on a points checkout, not the sale-price order answered as a
    points checkout that spent nothing."""
    sale_id, goods_id, _ = await _sale(social, stock=5, limit=1)
    _, token = await social.user()
    status, bought = await _buy(social, sale_id, token, key="k-flash")
    assert status == 201, bought
    status, body = await social.post(
        "/api/points/checkout", token, {"goods_id": goods_id, "quantity": 1, "points": 0},
        "k-flash",
    )  # fmt: skip
    assert (status, body.get("error", {}).get("code")) == (409, "idempotency_key_reused"), body
