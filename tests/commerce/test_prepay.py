"""POST /api/orders/{id}/pay: WeChat Pay JSAPI prepay, paySign, reuse, and the dev payment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from livecommerce import keys
from livecommerce.commerce import paysign
from livecommerce.commerce.payclient import PayRefused, WechatPayClient
from livecommerce.commerce.paysign import Merchant
from livecommerce.devtools.fake_wechat import FakeWechat
from tests.commerce.conftest import Shop, bearer
from tests.support import http


def _fake(shop: Shop) -> FakeWechat:
    return shop.server.app[keys.FAKE_WECHAT]


async def _pending(shop: Shop, price_fen: int = 990) -> tuple[dict[str, Any], str]:
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=5, price_fen=price_fen)
    token = await shop.login()
    status, order = await shop.order(token, gid)
    assert status == 201, order
    return order, token


async def _pay(shop: Shop, token: str, order_id: int) -> tuple[int, Any]:
    return await http("POST", f"{shop.url}/api/orders/{order_id}/pay", headers=bearer(token))


async def test_pay_returns_signed_request_payment_params(shop: Shop) -> None:
    """The answer is wx.requestPayment's params; paySign verifies with the merchant public key."""
    order, token = await _pending(shop)
    status, body = await _pay(shop, token, order["id"])
    assert status == 200, body
    payment = body["payment"]
    assert payment["package"] == f"prepay_id={body['prepay_id']}"
    assert payment["signType"] == "RSA"
    assert body["out_trade_no"] == order["out_trade_no"]
    merchant_key = _fake(shop).platform.merchant_key
    assert merchant_key is not None
    assert paysign.verify_pay_sign(merchant_key.public_key(), payment)
    assert not paysign.verify_pay_sign(
        merchant_key.public_key(), {**payment, "package": "prepay_id=wxother"}
    )
    fake = _fake(shop)
    assert fake.rejected_signatures == 0
    assert fake.orders[order["out_trade_no"]].total == order["total_fen"]


async def test_pay_is_idempotent_while_the_prepay_is_valid(shop: Shop) -> None:
    """Asking again (also concurrently) gives the same prepay_id; WeChat is asked at most once
    per concurrent burst and not at all afterwards."""
    order, token = await _pending(shop)
    first = await asyncio.gather(*(_pay(shop, token, order["id"]) for _ in range(5)))
    ids = {b["prepay_id"] for s, b in first if s == 200}
    assert len(ids) == 1
    assert all(s == 200 for s, _ in first)
    calls = _fake(shop).prepay_calls
    status, again = await _pay(shop, token, order["id"])
    assert status == 200
    assert again["prepay_id"] in ids
    assert _fake(shop).prepay_calls == calls  # served from the stored prepay


async def test_expired_prepay_is_replaced(shop: Shop) -> None:
    """A stored prepay past its validity is not handed out: WeChat is asked again."""
    order, token = await _pending(shop)
    await _pay(shop, token, order["id"])
    await shop.pool.execute("UPDATE orders SET prepay_valid_until = now() - interval '1 s'")
    calls = _fake(shop).prepay_calls
    status, _ = await _pay(shop, token, order["id"])
    assert status == 200
    assert _fake(shop).prepay_calls == calls + 1


async def test_pay_someone_elses_or_paid_order(shop: Shop) -> None:
    """Another user's order is 404; a paid order is 409; a missing one 404."""
    order, token = await _pending(shop)
    other = await shop.login()
    assert (await _pay(shop, other, order["id"]))[0] == 404
    assert (await _pay(shop, token, 987654321))[0] == 404
    await shop.pay(order)
    status, body = await _pay(shop, token, order["id"])
    assert (status, body["error"]["code"]) == (409, "illegal_transition")


async def test_dev_payment_of_request_payment_params_pays_the_order(shop: Shop) -> None:
    """The fake pays what wx.requestPayment gets (paySign checked): the order becomes paid."""
    order, token = await _pending(shop)
    _, body = await _pay(shop, token, order["id"])
    forged = {**body["payment"], "nonceStr": "x" + body["payment"]["nonceStr"]}
    status, refused = await http("POST", shop.fake_url + "/dev/pay", json={"payment": forged})
    assert status == 400
    assert refused["code"] == "SIGN_ERROR"
    status, sent = await http("POST", shop.fake_url + "/dev/pay", json={"payment": body["payment"]})
    assert status == 200, sent
    assert sent["notify_status"] == 200, sent  # type: ignore[index]
    _, got = await http("GET", f"{shop.url}/api/orders/{order['id']}", headers=bearer(token))
    assert got["status"] == "paid"  # type: ignore[index]
    await asyncio.sleep(0)


async def test_fake_refuses_requests_not_signed_by_the_merchant(shop: Shop) -> None:
    """A request signed with another key is refused by WeChat Pay (SIGN_ERROR, 401)."""
    client = shop.server.app[keys.PAY_CLIENT]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    m = client.merchant
    impostor = WechatPayClient(
        client.session, client.base_url, Merchant(m.mch_id, m.app_id, m.serial, other), client.keys
    )
    with pytest.raises(PayRefused) as caught:
        await impostor.query_order("LC0000000000000001")
    assert caught.value.code == "SIGN_ERROR"
    assert _fake(shop).rejected_signatures == 1


async def test_order_total_above_int32_is_refused_at_creation(shop: Shop) -> None:
    """A total WeChat Pay cannot charge (> 2^31-1 fen) is a 400 on quantity; no stock taken."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=10, price_fen=1_000_000_000)
    token = await shop.login()
    status, body = await shop.order(token, gid, quantity=3)
    assert status == 400
    assert (body["error"]["field"], body["error"]["code"]) == ("quantity", "amount_too_large")
    assert await shop.stock(gid) == 10
    status, _ = await shop.order(token, gid, quantity=2)  # 2_000_000_000 fen: still payable
    assert status == 201
