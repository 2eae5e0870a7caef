"""WeChat Pay v3 notifications from the fake's simulator: valid, replayed, forged, mismatched."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from livecommerce import keys
from livecommerce.commerce import orders, wechatpay
from livecommerce.commerce.wechatpay import DevPlatform
from tests.commerce.conftest import Shop, bearer
from tests.support import http


async def _pending(
    shop: Shop, stock: int = 5, quantity: int = 1
) -> tuple[dict[str, Any], str, int]:
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=stock, price_fen=990)
    token = await shop.login()
    status, order = await shop.order(token, gid, quantity=quantity)
    assert status == 201
    return order, token, gid


async def _status(shop: Shop, order_id: int) -> str:
    value: str = await shop.pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
    return value


async def _post(shop: Shop, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(shop.notify_url, data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


def _transaction(shop: Shop, order: dict[str, Any], **changes: Any) -> dict[str, Any]:
    keys_ = shop.server.app[keys.PAY_KEYS]
    return {
        "appid": keys_.app_id,
        "mchid": keys_.mch_id,
        "out_trade_no": order["out_trade_no"],
        "transaction_id": "4200000001",
        "trade_state": "SUCCESS",
        "payer": {"openid": "o-x"},
        "amount": {"total": order["total_fen"], "currency": "CNY"},
        **changes,
    }


def _platform(shop: Shop) -> DevPlatform:
    return shop.server.app[keys.FAKE_WECHAT].platform


async def test_valid_notification_marks_paid_once(shop: Shop) -> None:
    """A signed notification pays the order; replaying it byte for byte is 'already processed'."""
    order, token, _ = await _pending(shop)
    sent = await shop.pay(order)
    assert sent["notify_status"] == 200
    assert orjson.loads(sent["notify_response"]) == {"code": "SUCCESS", "message": "applied"}
    assert await _status(shop, order["id"]) == "paid"
    status, body = await shop.replay(sent)
    assert (status, body) == (200, {"code": "SUCCESS", "message": "already processed"})
    again = await shop.pay(order, transaction_id=sent["transaction_id"])  # a fresh resend
    assert orjson.loads(again["notify_response"])["message"] == "already processed"
    assert await shop.pool.fetchval("SELECT count(*) FROM payments") == 1
    _, got = await http("GET", f"{shop.url}/api/orders/{order['id']}", headers=bearer(token))
    assert got["transaction_id"] == sent["transaction_id"]  # type: ignore[index]


async def test_concurrent_replays_apply_once(shop: Shop) -> None:
    """Twenty copies of one notification at once: one applies, all answer 200."""
    order, _, gid = await _pending(shop)
    sent = await shop.pay(order)
    results = await asyncio.gather(*(shop.replay(sent) for _ in range(20)))
    assert {r[0] for r in results} == {200}
    assert await shop.pool.fetchval("SELECT count(*) FROM payments") == 1
    assert await shop.stock(gid) == 4


async def test_forged_tampered_and_stale_notifications_are_refused(shop: Shop) -> None:
    """A foreign key, an edited body, an unknown serial, an old timestamp or no headers: 401."""
    order, _, _ = await _pending(shop)
    platform = _platform(shop)
    resource = wechatpay.encrypt_resource(platform.apiv3_key, _transaction(shop, order))
    body = wechatpay.notification_body(resource)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "forged": wechatpay.sign_headers(forger, platform.serial, body),
        "unknown serial": wechatpay.sign_headers(platform.private_key, "NOPE", body),
        "stale": wechatpay.sign_headers(
            platform.private_key, platform.serial, body, timestamp=int(time.time()) - 3600
        ),
        "no signature": {"Content-Type": "application/json"},
    }
    for name, headers in cases.items():
        status, answer = await _post(shop, body, headers)
        assert status == 401, name
        assert "error" in answer
    good = wechatpay.sign_headers(platform.private_key, platform.serial, body)
    tampered = body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESS ")
    assert (await _post(shop, tampered, good))[0] == 401
    bad_sig = {**good, "Wechatpay-Signature": "not base64!!"}
    assert (await _post(shop, body, bad_sig))[0] == 401
    assert await _status(shop, order["id"]) == "pending_payment"
    assert (await _post(shop, body, good))[0] == 200  # the genuine one still works
    assert await _status(shop, order["id"]) == "paid"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": {"total": 1, "currency": "CNY"}}, "amount.total"),
        ({"amount": {"total": 9.9}}, "amount.total"),
        ({"mchid": "1900000999"}, "mchid"),
        ({"appid": "wxother"}, "appid"),
        ({"out_trade_no": "LC9999"}, "out_trade_no"),
        ({"out_trade_no": "LC0000000099999999"}, "out_trade_no"),
        ({"transaction_id": ""}, "transaction_id"),
    ],
)
async def test_mismatched_transactions_are_rejected(
    shop: Shop, changes: dict[str, Any], field: str
) -> None:
    """Wrong amount, merchant, app or order: 400 naming it, and the order stays unpaid."""
    order, _, _ = await _pending(shop)
    platform = _platform(shop)
    resource = wechatpay.encrypt_resource(platform.apiv3_key, _transaction(shop, order, **changes))
    body = wechatpay.notification_body(resource)
    headers = wechatpay.sign_headers(platform.private_key, platform.serial, body)
    status, answer = await _post(shop, body, headers)
    assert (status, answer["error"]["field"]) == (400, field)
    assert await _status(shop, order["id"]) == "pending_payment"
    assert await shop.pool.fetchval("SELECT count(*) FROM payments") == 0


async def test_wrong_amount_via_simulator_is_not_applied(shop: Shop) -> None:
    """The simulator paying less than the total gets 400; the order is not paid."""
    order, _, _ = await _pending(shop)
    sent = await shop.pay(order, amount=order["total_fen"] - 1)
    assert sent["notify_status"] == 400
    assert await _status(shop, order["id"]) == "pending_payment"


async def test_resource_that_does_not_decrypt_is_400(shop: Shop) -> None:
    """A correctly signed body whose resource was sealed with another APIv3 key: 400."""
    order, _, _ = await _pending(shop)
    platform = _platform(shop)
    resource = wechatpay.encrypt_resource(b"x" * 32, _transaction(shop, order))
    for res in (resource, {**resource, "algorithm": "AES"}, {**resource, "nonce": "short"}, "x"):
        body = orjson.dumps({"event_type": "TRANSACTION.SUCCESS", "resource": res})
        headers = wechatpay.sign_headers(platform.private_key, platform.serial, body)
        status, answer = await _post(shop, body, headers)
        assert status == 400
        assert answer["error"]["field"].startswith("resource")
    body = b"[not json"
    headers = wechatpay.sign_headers(platform.private_key, platform.serial, body)
    assert (await _post(shop, body, headers))[0] == 400


async def test_non_success_events_are_acknowledged_without_effect(shop: Shop) -> None:
    """Other event types and non-SUCCESS trade states are acknowledged (200) and change nothing."""
    order, _, _ = await _pending(shop)
    sent = await shop.pay(order, trade_state="NOTPAY")
    assert sent["notify_status"] == 200
    platform = _platform(shop)
    body = orjson.dumps({"event_type": "REFUND.SUCCESS", "resource": {}})
    headers = wechatpay.sign_headers(platform.private_key, platform.serial, body)
    assert (await _post(shop, body, headers))[0] == 200
    assert await _status(shop, order["id"]) == "pending_payment"


async def test_late_payment_retakes_stock_when_available(shop: Shop) -> None:
    """A payment for an auto-cancelled order takes the stock again and the order is paid."""
    order, _, gid = await _pending(shop, stock=3, quantity=2)
    await shop.pool.execute("UPDATE orders SET expires_at = now() - interval '1 s'")
    shop.server.app[keys.ORDER_REAPER].poke()
    for _ in range(100):
        if await _status(shop, order["id"]) == "cancelled":
            break
        await asyncio.sleep(0.05)
    assert await shop.stock(gid) == 3
    sent = await shop.pay(order)
    assert sent["notify_status"] == 200
    assert await _status(shop, order["id"]) == "paid"
    assert await shop.stock(gid) == 1


async def test_late_payment_after_stock_sold_is_refunded_never_oversold(shop: Shop) -> None:
    """The order was cancelled and its stock sold to someone else: refund, stock stays 0."""
    order, _, gid = await _pending(shop, stock=1)
    async with shop.pool.acquire() as conn:
        await conn.execute("UPDATE orders SET expires_at = now() - interval '1 s'")
        await orders.expire_due(conn, 10)  # (or the app's own reaper got there first)
    for _ in range(250):  # the reaper may still hold the row it took (SKIP LOCKED skipped it)
        if await _status(shop, order["id"]) == "cancelled":
            break
        await asyncio.sleep(0.02)
    assert await _status(shop, order["id"]) == "cancelled"
    buyer = await shop.login()
    assert (await shop.order(buyer, gid))[0] == 201
    assert await shop.stock(gid) == 0
    sent = await shop.pay(order)
    assert orjson.loads(sent["notify_response"])["message"] == "refund_required"
    assert await _status(shop, order["id"]) == "refunded"
    assert await shop.stock(gid) == 0
    outcome = await shop.pool.fetchval("SELECT outcome FROM payments")
    assert outcome == "refund_required"
    assert (await shop.replay(sent))[1]["message"] == "already processed"
    # The money goes back through WeChat Pay: one refund of the whole payment, requested.
    for _ in range(200):
        rows = await shop.pool.fetch("SELECT status, amount_fen FROM refunds")
        if rows and rows[0]["status"] == "processing":
            break
        await asyncio.sleep(0.05)
    assert [(r["status"], r["amount_fen"]) for r in rows] == [("processing", order["total_fen"])]
