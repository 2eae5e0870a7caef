"""The README's purchase walkthrough, step by step over HTTP: login → feed → order → pay →
paid notice → ship → after-sales → refunded (the fake WeChat as in `make run`)."""

from __future__ import annotations

import asyncio
from typing import Any

from livecommerce import keys
from tests.commerce.conftest import ADDRESS, Shop, bearer
from tests.support import http


async def test_readme_walkthrough_login_to_refunded(shop: Shop) -> None:
    """Each README step answers what the README says it does."""
    api, fake = shop.url, shop.fake_url
    host_id, host_token = await shop.host()
    await shop.goods(host_id, stock=3, price_fen=2990)
    status, login = await http("POST", api + "/api/auth/wechat/login", json={"code": "alice.1"})
    assert status == 200, login
    token = login["token"]  # type: ignore[index]
    _, feed = await http("GET", api + "/api/goods?limit=1")
    goods = feed["items"][0]["id"]  # type: ignore[index]
    status, order = await http(
        "POST", api + "/api/orders", json={"goods_id": goods, "quantity": 1, "address": ADDRESS},
        headers={**bearer(token), "Idempotency-Key": "walk-1"},
    )  # fmt: skip
    assert status == 201, order
    oid = order["id"]  # type: ignore[index]
    _, started = await http("POST", f"{api}/api/orders/{oid}/pay", headers=bearer(token))
    status, paid = await http("POST", fake + "/dev/pay", json={"payment": started["payment"]})  # type: ignore[index]
    assert status == 200
    assert "applied" in paid["notify_response"]  # type: ignore[index]
    _, mine = await http("GET", f"{api}/api/orders/{oid}", headers=bearer(token))
    assert mine["status"] == "paid"  # type: ignore[index]
    messages: list[dict[str, Any]] = []
    for _ in range(200):
        _, sent = await http("GET", fake + "/dev/messages")
        messages = sent["messages"]  # type: ignore[index]
        if messages:
            break
        await asyncio.sleep(0.05)
    assert messages[-1]["data"]["thing1"]["value"] == "Test goods"
    status, shipped = await http(
        "POST", f"{api}/api/host/orders/{oid}/ship", json={"carrier": "SF", "tracking_no": "SF123"},
        headers=bearer(host_token),
    )  # fmt: skip
    assert (status, shipped["status"]) == (200, "shipped")  # type: ignore[index]
    status, after_sale = await http(
        "POST", f"{api}/api/orders/{oid}/after-sales", headers=bearer(token),
        json={"reason": "arrived broken", "return_goods": True},
    )  # fmt: skip
    assert status == 201, after_sale
    status, _ = await http(
        "POST", f"{api}/api/host/after-sales/{after_sale['id']}/approve",  # type: ignore[index]
        json={}, headers=bearer(host_token),
    )  # fmt: skip
    assert status == 200
    refunds: list[Any] = []
    for _ in range(200):  # the refund worker asks WeChat Pay; then "WeChat finishes the refund"
        await http("POST", fake + "/dev/refunds/settle", json={})
        _, listed = await http("GET", f"{api}/api/orders/{oid}/refunds", headers=bearer(token))
        refunds = [(r["status"], r["amount_fen"]) for r in listed["items"]]  # type: ignore[index]
        if refunds == [("success", 2990)]:
            break
        await asyncio.sleep(0.05)
    assert refunds == [("success", 2990)]
    _, mine = await http("GET", f"{api}/api/orders/{oid}", headers=bearer(token))
    assert mine["status"] == "refunded"  # type: ignore[index]
    kinds = await shop.pool.fetch("SELECT kind FROM notifications ORDER BY id")
    assert {"order_paid", "order_shipped", "aftersale_approved", "refund_started",
            "refund_succeeded"} <= {r["kind"] for r in kinds}  # fmt: skip
    assert shop.server.app[keys.FAKE_WECHAT].refunds  # WeChat Pay really made the refund
