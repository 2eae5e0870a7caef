"""Refunds through WeChat Pay: every path, exactly once, partial sums, notifications, queries."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from livecommerce import keys
from livecommerce.commerce import wechatpay
from livecommerce.devtools.fake_wechat import FakeWechat
from livecommerce.social.refunds import refund_paid_order
from tests.commerce.conftest import Shop, bearer
from tests.support import http


def _fake(shop: Shop) -> FakeWechat:
    return shop.server.app[keys.FAKE_WECHAT]


async def _paid(shop: Shop, price_fen: int = 990) -> tuple[dict[str, Any], str, int, str, int]:
    """A paid order through the real flow: (order, buyer token, host id, host token, goods)."""
    host_id, host_token = await shop.host()
    gid = await shop.goods(host_id, stock=5, price_fen=price_fen)
    token = await shop.login()
    status, order = await shop.order(token, gid)
    assert status == 201
    _, started = await http(
        "POST", f"{shop.url}/api/orders/{order['id']}/pay", headers=bearer(token)
    )
    assert isinstance(started, dict)
    status, sent = await http(
        "POST", shop.fake_url + "/dev/pay", json={"payment": started["payment"]}
    )
    assert status == 200
    assert sent["notify_status"] == 200  # type: ignore[index]
    return order, token, host_id, host_token, gid


async def _refunds(shop: Shop, order_id: int) -> list[dict[str, Any]]:
    rows = await shop.pool.fetch("SELECT * FROM refunds WHERE order_id = $1 ORDER BY id", order_id)
    return [dict(r) for r in rows]


async def _wait(shop: Shop, order_id: int, status: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until ``count`` refunds of the order are in ``status`` (the worker runs them)."""
    for _ in range(200):
        rows = await _refunds(shop, order_id)
        if sum(r["status"] == status for r in rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"refunds of {order_id}: {await _refunds(shop, order_id)}")


async def _settle(shop: Shop) -> dict[str, Any]:
    status, body = await http("POST", shop.fake_url + "/dev/refunds/settle", json={})
    assert status == 200
    assert isinstance(body, dict)
    return body


async def _notices(shop: Shop, order_id: int) -> list[str]:
    rows = await shop.pool.fetch(
        "SELECT kind FROM notifications WHERE (payload->>'order_id')::bigint = $1 ORDER BY id",
        order_id,
    )
    return [r["kind"] for r in rows]


async def test_double_payment_is_refunded_once_through_wechat(shop: Shop) -> None:
    """A second payment of one order: refunded via WeChat (same out_refund_no), notices once."""
    order, _, _, _, _ = await _paid(shop)
    second = await shop.pay(order)  # another transaction for the same order
    assert "refund_required" in second["notify_response"]
    rows = await _wait(shop, order["id"], "processing")
    assert len(rows) == 1
    assert rows[0]["transaction_id"] == second["transaction_id"]
    assert rows[0]["amount_fen"] == order["total_fen"]
    await _settle(shop)
    await _wait(shop, order["id"], "success")
    notice = _fake(shop).refund_notices[-1]
    assert orjson.loads(notice["notify_response"])["message"] == "applied"
    kinds = await _notices(shop, order["id"])
    assert kinds.count("refund_started") == 1
    assert kinds.count("refund_succeeded") == 1
    assert len(_fake(shop).refunds) == 1
    assert (await shop.pool.fetchval("SELECT status FROM orders")) == "paid"  # first payment kept


async def test_refund_notification_replay_and_forgery(shop: Shop) -> None:
    """A replayed refund notification is 'already processed'; a forged one 401; no double notice."""
    order, _, _, _, _ = await _paid(shop)
    await shop.pay(order)
    await _wait(shop, order["id"], "processing")
    await _settle(shop)
    await _wait(shop, order["id"], "success")
    notice = _fake(shop).refund_notices[-1]
    url = shop.url + "/api/pay/wechat/refund-notify"
    for _ in range(3):
        status, body = await http(
            "POST", url, data=notice["notify_body"].encode(), headers=notice["notify_headers"]
        )
        assert (status, body) == (200, {"code": "SUCCESS", "message": "already processed"})
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform = _fake(shop).platform
    body_bytes = notice["notify_body"].encode()
    forged = wechatpay.sign_headers(forger, platform.serial, body_bytes)
    assert (await http("POST", url, data=body_bytes, headers=forged))[0] == 401
    assert (await _notices(shop, order["id"])).count("refund_succeeded") == 1


async def test_query_fallback_when_the_notification_never_comes(shop: Shop) -> None:
    """No refund notification: the worker's query finds the final state."""
    fake = _fake(shop)
    fake.refund_notify = False
    order, _, _, _, _ = await _paid(shop)
    await shop.pay(order)
    await _wait(shop, order["id"], "processing")
    await _settle(shop)
    await shop.pool.execute("UPDATE refunds SET next_attempt_at = now()")
    shop.server.app[keys.REFUND_WORKER].poke()
    rows = await _wait(shop, order["id"], "success")
    assert rows[0]["refund_id"]
    assert fake.refund_notices == []


async def test_transient_failures_are_retried_with_the_same_number(shop: Shop) -> None:
    """SYSTEM_ERROR twice: retried with backoff, one refund at WeChat, attempts recorded."""
    fake = _fake(shop)
    fake.refund_failures = 2
    order, _, _, _, _ = await _paid(shop)
    await shop.pay(order)
    for _ in range(200):
        rows = await _refunds(shop, order["id"])
        if rows and rows[0]["attempts"] >= 1:
            break
        await asyncio.sleep(0.05)
    assert rows[0]["status"] == "pending"
    assert "SYSTEM_ERROR" in rows[0]["last_error"]
    for _ in range(3):
        await shop.pool.execute("UPDATE refunds SET next_attempt_at = now()")
        shop.server.app[keys.REFUND_WORKER].poke()
        await asyncio.sleep(0.2)
    rows = await _wait(shop, order["id"], "processing")
    assert fake.refund_calls == 3
    assert len(fake.refunds) == 1


async def test_abnormal_and_closed_are_final(shop: Shop) -> None:
    """WeChat says ABNORMAL: the refund ends abnormal (no success notice)."""
    fake = _fake(shop)
    fake.refund_final = "ABNORMAL"
    order, _, _, _, _ = await _paid(shop)
    await shop.pay(order)
    await _wait(shop, order["id"], "processing")
    await _settle(shop)
    await _wait(shop, order["id"], "abnormal")
    assert "refund_succeeded" not in await _notices(shop, order["id"])


async def test_failed_group_style_refund_goes_through_wechat(shop: Shop) -> None:
    """A system refund of a paid order (as a failed group does) creates and runs the refund."""
    order, _, _, _, gid = await _paid(shop)
    async with shop.pool.acquire() as conn:
        assert await refund_paid_order(conn, order["id"], "group_failed")
        assert not await refund_paid_order(conn, order["id"], "group_failed")
    rows = await _wait(shop, order["id"], "processing")
    assert len(rows) == 1
    assert rows[0]["reason"] == "group_failed"
    assert await shop.stock(gid) == 5


async def test_goodwill_partial_refunds_never_exceed_the_payment(shop: Shop) -> None:
    """Partial refunds add up to at most what was paid; the key replays; the rest refunds all."""
    order, token, _, host_token, _ = await _paid(shop, price_fen=1000)
    url = f"{shop.url}/api/host/orders/{order['id']}/refunds"

    async def refund(amount: int | None, key: str) -> tuple[int, Any]:
        body: dict[str, Any] = {"reason": "scratched box"}
        if amount is not None:
            body["amount_fen"] = amount
        return await http(
            "POST", url, json=body, headers={**bearer(host_token), "Idempotency-Key": key}
        )

    first = await refund(300, "k1")
    assert first[0] == 201
    assert (await refund(300, "k1"))[0] == 200  # replay
    assert (await refund(500, "k1"))[0] == 409  # same key, other amount
    results = await asyncio.gather(*(refund(400, f"race{i}") for i in range(4)))
    assert sorted(s for s, _ in results) == [201, 409, 409, 409]  # 300 + 400 <= 1000 < +400
    status, body = await refund(301, "k3")
    assert (status, body["error"]["code"]) == (409, "refund_exceeds_payment")
    assert await shop.pool.fetchval("SELECT status FROM orders") == "paid"
    status, rest = await refund(None, "k4")
    assert status == 201
    assert rest["amount_fen"] == 300
    assert await shop.pool.fetchval("SELECT status FROM orders") == "refunded"
    total = await shop.pool.fetchval("SELECT sum(amount_fen) FROM refunds")
    assert total == 1000
    _, other_host = await shop.host()
    assert (await http("POST", url, json={}, headers={
        **bearer(other_host), "Idempotency-Key": "x"}))[0] == 404  # fmt: skip
    status, mine = await http("GET", f"{shop.url}/api/orders/{order['id']}/refunds",
                              headers=bearer(token))  # fmt: skip
    assert status == 200
    assert len(mine["items"]) == 3  # type: ignore[index]
    await _wait(shop, order["id"], "processing", count=3)
    await _settle(shop)
    await _wait(shop, order["id"], "success", count=3)
    assert sum(r.refund for r in _fake(shop).refunds.values()) == 1000


async def test_after_sales_approve_refunds_and_reject_is_final(shop: Shop) -> None:
    """Buyer asks; another user or host gets 404; host approves once: order refunded, stock back."""
    order, token, _, host_token, gid = await _paid(shop)
    url = f"{shop.url}/api/orders/{order['id']}/after-sales"
    ask = {"reason": "wrong size", "return_goods": False}
    status, req = await http("POST", url, json=ask, headers=bearer(token))
    assert status == 201, req
    assert (await http("POST", url, json=ask, headers=bearer(token)))[0] == 200  # the open one
    stranger = await shop.login()
    assert (await http("POST", url, json=ask, headers=bearer(stranger)))[0] == 404
    _, other_host = await shop.host()
    rid = req["id"]  # type: ignore[index]
    approve = f"{shop.url}/api/host/after-sales/{rid}/approve"
    assert (await http("POST", approve, json={}, headers=bearer(other_host)))[0] == 404
    status, listed = await http(
        "GET", f"{shop.url}/api/host/after-sales?status=requested", headers=bearer(host_token)
    )
    assert status == 200
    assert [i["id"] for i in listed["items"]] == [rid]  # type: ignore[index]
    results = await asyncio.gather(
        http("POST", approve, json={"note": "ok"}, headers=bearer(host_token)),
        http("POST", f"{shop.url}/api/host/after-sales/{rid}/reject", json={"note": "no"},
             headers=bearer(host_token)),
    )  # fmt: skip
    assert sorted(s for s, _ in results) == [200, 409]
    decided = await shop.pool.fetchval("SELECT status FROM after_sales WHERE id = $1", rid)
    order_status = await shop.pool.fetchval("SELECT status FROM orders")
    if decided == "approved":
        assert order_status == "refunded"
        assert await shop.stock(gid) == 5
        await _wait(shop, order["id"], "processing")
        assert "aftersale_approved" in await _notices(shop, order["id"])
    else:
        assert order_status == "paid"
        assert await _refunds(shop, order["id"]) == []
        assert "aftersale_rejected" in await _notices(shop, order["id"])


async def test_after_sale_of_unpaid_order_is_409(shop: Shop) -> None:
    """Only paid or shipped orders can be the subject of an after-sales request."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id)
    token = await shop.login()
    _, order = await shop.order(token, gid, key=secrets.token_hex(4))
    status, body = await http(
        "POST",
        f"{shop.url}/api/orders/{order['id']}/after-sales",
        json={"reason": "changed my mind"},
        headers=bearer(token),
    )
    assert (status, body["error"]["code"]) == (409, "illegal_transition")  # type: ignore[index]


async def test_refund_committed_elsewhere_wakes_the_worker_through_listen(shop: Shop) -> None:
    """Polling off (an hour): a refund committed by another connection, as on another node, is
    sent at once because its NOTIFY wakes the worker — also after the LISTEN connection was
    killed (it reconnects by itself)."""
    worker = shop.server.app[keys.REFUND_WORKER]
    listener = shop.server.app[keys.REFUND_LISTENER]
    await asyncio.wait_for(listener.connected.wait(), 15)
    worker.max_sleep_seconds = 3600.0
    worker.poke()  # its next sleep is capped by the hour
    await asyncio.sleep(0.3)
    for round_ in range(2):
        order, _, _, _, _ = await _paid(shop)
        async with shop.pool.acquire() as conn:  # no poke: only the NOTIFY can wake the worker
            assert await refund_paid_order(conn, order["id"], "group_failed")
        await _wait(shop, order["id"], "processing")
        if round_ == 0:
            assert await shop.pool.fetchval("SELECT pg_terminate_backend($1)", listener.pid)
            for _ in range(300):
                if listener.connections == 2 and listener.connected.is_set():
                    break
                await asyncio.sleep(0.05)
            assert listener.connections == 2
            await asyncio.sleep(0.3)  # the wake-up of the reconnection has passed


async def test_abnormal_refund_notification_logs_its_order(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    """An ABNORMAL refund learnt from WeChat's notification is logged with its real order (the
    line tells the merchant which order to handle by hand; it said "order 0")."""
    fake = _fake(shop)
    fake.refund_final = "ABNORMAL"
    order, _, _, _, _ = await _paid(shop)
    await shop.pay(order)
    await _wait(shop, order["id"], "processing")
    with caplog.at_level(logging.ERROR, logger="livecommerce.refunds"):
        await _settle(shop)
        await _wait(shop, order["id"], "abnormal")
    lines = [r.getMessage() for r in caplog.records if "ABNORMAL" in r.getMessage()]
    assert lines, caplog.records
    assert all(f"of order {order['id']} " in line for line in lines), lines
