"""Asking WeChat Pay: query before cancel, close on cancel, stale prepays, WeChat down."""

from __future__ import annotations

import asyncio
from typing import Any

from livecommerce import keys
from livecommerce.commerce import paychecks
from livecommerce.devtools.fake_wechat import FakeWechat
from tests.commerce.conftest import Shop, bearer
from tests.support import http


def _fake(shop: Shop) -> FakeWechat:
    return shop.server.app[keys.FAKE_WECHAT]


async def _prepaid(shop: Shop, stock: int = 5) -> tuple[dict[str, Any], str, int, dict[str, Any]]:
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=stock, price_fen=1200)
    token = await shop.login()
    status, order = await shop.order(token, gid)
    assert status == 201
    status, started = await http(
        "POST", f"{shop.url}/api/orders/{order['id']}/pay", headers=bearer(token)
    )
    assert status == 200, started
    assert isinstance(started, dict)
    return order, token, gid, started


async def _status(shop: Shop, order_id: int) -> str:
    value: str = await shop.pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
    return value


async def _wait_status(shop: Shop, order_id: int, want: str) -> None:
    for _ in range(200):
        if await _status(shop, order_id) == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} is {await _status(shop, order_id)}, not {want}")


async def _lost_payment(shop: Shop, started: dict[str, Any]) -> str:
    """The buyer pays but WeChat's notification never reaches us; the transaction id."""
    status, sent = await http(
        "POST",
        shop.fake_url + "/dev/pay",
        json={"prepay_id": started["prepay_id"], "notify": False},
    )
    assert status == 200
    assert isinstance(sent, dict)
    assert sent["notify_status"] == 0
    return str(sent["transaction_id"])


async def test_paid_order_past_its_deadline_is_applied_not_cancelled(shop: Shop) -> None:
    """Paid at WeChat, notification late: the reaper's query applies it; the stock stays sold."""
    order, _, gid, started = await _prepaid(shop)
    txn = await _lost_payment(shop, started)
    await shop.pool.execute("UPDATE orders SET expires_at = now() - interval '1 s'")
    shop.server.app[keys.ORDER_REAPER].poke()
    await _wait_status(shop, order["id"], "paid")
    assert await shop.stock(gid) == 4
    row = await shop.pool.fetchrow("SELECT transaction_id, cancelled_at FROM orders")
    assert row["transaction_id"] == txn
    assert row["cancelled_at"] is None
    assert order["out_trade_no"] not in _fake(shop).closed
    # The notification that finally arrives changes nothing.
    status, sent = await http(
        "POST",
        shop.fake_url + "/dev/pay",
        json={"prepay_id": started["prepay_id"], "transaction_id": txn},
    )
    assert status == 200
    assert "already processed" in sent["notify_response"]  # type: ignore[index]
    assert await shop.pool.fetchval("SELECT count(*) FROM payments") == 1


async def test_unpaid_order_is_closed_at_wechat_then_cancelled(shop: Shop) -> None:
    """Due and unpaid: WeChat's order is closed (it can no longer be paid), then cancelled."""
    order, _, gid, started = await _prepaid(shop)
    await shop.pool.execute("UPDATE orders SET expires_at = now() - interval '1 s'")
    shop.server.app[keys.ORDER_REAPER].poke()
    await _wait_status(shop, order["id"], "cancelled")
    assert await shop.stock(gid) == 5
    assert order["out_trade_no"] in _fake(shop).closed
    status, refused = await http(
        "POST", shop.fake_url + "/dev/pay", json={"payment": started["payment"]}
    )
    assert status == 400
    assert refused["code"] == "ORDER_CLOSED"  # type: ignore[index]
    assert await shop.pool.fetchval("SELECT pay_closed_at IS NOT NULL FROM orders")


async def test_buyer_cancel_closes_the_wechat_order(shop: Shop) -> None:
    """A buyer's cancel (any cancel path) is followed by closing its WeChat order."""
    order, token, _, _ = await _prepaid(shop)
    status, _ = await http(
        "POST", f"{shop.url}/api/orders/{order['id']}/cancel", headers=bearer(token)
    )
    assert status == 200
    client = shop.server.app[keys.PAY_CLIENT]
    assert await paychecks.close_cancelled(shop.pool, client, batch=10) in (0, 1)
    assert order["out_trade_no"] in _fake(shop).closed
    assert await paychecks.close_cancelled(shop.pool, client, batch=10) == 0  # once


async def test_buyer_cancel_closes_the_wechat_order_before_answering(shop: Shop) -> None:
    """The cancel answers only once the WeChat order is closed: the wx.requestPayment the
    buyer still holds can no longer pay the cancelled order (it used to, until the next sweep)."""
    order, token, gid, started = await _prepaid(shop, stock=1)
    status, body = await http(
        "POST", f"{shop.url}/api/orders/{order['id']}/cancel", headers=bearer(token)
    )
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["status"] == "cancelled"
    assert order["out_trade_no"] in _fake(shop).closed
    status, paid = await http(
        "POST", shop.fake_url + "/dev/pay", json={"payment": started["payment"]}
    )
    assert status == 400, paid
    assert isinstance(paid, dict)
    assert paid["code"] == "ORDER_CLOSED"
    assert await _status(shop, order["id"]) == "cancelled"
    assert await shop.stock(gid) == 1
    assert await shop.pool.fetchval("SELECT pay_closed_at IS NOT NULL FROM orders")


async def test_stale_prepay_is_queried_and_applied(shop: Shop) -> None:
    """A lost notification is found by querying a prepay older than the configured age."""
    order, _, _, started = await _prepaid(shop)
    await _lost_payment(shop, started)
    client = shop.server.app[keys.PAY_CLIENT]
    assert await paychecks.query_stale(shop.pool, client, batch=10, stale_seconds=3600) == 0
    await shop.pool.execute("UPDATE orders SET prepay_at = now() - interval '10 min'")
    assert await paychecks.query_stale(shop.pool, client, batch=10, stale_seconds=60) == 1
    assert await _status(shop, order["id"]) == "paid"


async def test_wechat_down_postpones_the_cancel(shop: Shop) -> None:
    """WeChat Pay unreachable: a due prepaid order is not cancelled blindly; retried later."""
    order, _, _, _ = await _prepaid(shop)
    await shop.pool.execute("UPDATE orders SET expires_at = now() - interval '1 s'")
    client = shop.server.app[keys.PAY_CLIENT]
    real_url = client.base_url
    client.base_url = "http://127.0.0.1:9"  # nothing listens there
    try:
        counts = await paychecks.settle_due(shop.pool, client, batch=10, retry_seconds=60)
    finally:
        client.base_url = real_url
    assert counts["retry"] == 1
    assert await _status(shop, order["id"]) == "pending_payment"
    again = await paychecks.settle_due(shop.pool, client, batch=10, retry_seconds=60)
    assert sum(again.values()) == 0  # backing off
    await shop.pool.execute("UPDATE orders SET pay_checked_at = now() - interval '2 min'")
    assert (await paychecks.settle_due(shop.pool, client, batch=10, retry_seconds=60))[
        "cancelled"
    ] == 1
