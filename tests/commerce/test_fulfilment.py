"""Orders a host can fulfil: shipping addresses (validated, private, unlogged), host lists, CSV."""

from __future__ import annotations

import csv
import io
import logging
import secrets
from typing import Any

import aiohttp
import pytest

from tests.commerce.conftest import ADDRESS, Shop, bearer
from tests.support import http


async def _order(
    shop: Shop, token: str, gid: int, address: dict[str, Any] | None = ADDRESS
) -> tuple[int, Any]:
    body: dict[str, Any] = {"goods_id": gid, "quantity": 1}
    if address is not None:
        body["address"] = address
    return await http(
        "POST",
        shop.url + "/api/orders",
        json=body,
        headers={**bearer(token), "Idempotency-Key": secrets.token_hex(8)},
    )


async def test_address_is_stored_and_visible_to_buyer_and_owning_host_only(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    """Buyer and the order's host see the address; another user/host gets 404; never logged."""
    caplog.set_level(logging.DEBUG)
    host_id, host_token = await shop.host()
    gid = await shop.goods(host_id)
    token = await shop.login()
    status, order = await _order(shop, token, gid)
    assert status == 201, order
    assert order["address"] == {**ADDRESS, "nationalCode": None}
    _, mine = await http("GET", f"{shop.url}/api/orders/{order['id']}", headers=bearer(token))
    assert mine["address"]["telNumber"] == "13800138000"  # type: ignore[index]
    stranger = await shop.login()
    assert (await http("GET", f"{shop.url}/api/orders/{order['id']}",
                       headers=bearer(stranger)))[0] == 404  # fmt: skip
    _, listed = await http("GET", f"{shop.url}/api/host/orders", headers=bearer(host_token))
    assert [o["address"]["cityName"] for o in listed["items"]] == ["广州市"]  # type: ignore[index]
    _, other_host = await shop.host()
    _, theirs = await http("GET", f"{shop.url}/api/host/orders", headers=bearer(other_host))
    assert theirs["items"] == []  # type: ignore[index]
    assert "13800138000" not in caplog.text
    assert "新港中路" not in caplog.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"telNumber": "call me"}, "address.telNumber"),
        ({"postalCode": "51000"}, "address.postalCode"),
        ({"userName": ""}, "address.userName"),
        ({"detailInfo": "x" * 201}, "address.detailInfo"),
        ({"street": "extra"}, "address.street"),
    ],
)
async def test_address_is_validated(shop: Shop, change: dict[str, Any], field: str) -> None:
    """A malformed address is a 400 naming the field; no order is made."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id)
    token = await shop.login()
    status, body = await _order(shop, token, gid, {**ADDRESS, **change})
    assert status == 400
    assert body["error"]["field"] == field
    assert await shop.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_address_can_be_set_until_shipped(shop: Shop) -> None:
    """PUT sets the address of a pending or paid order; after shipping it is 409."""
    host_id, host_token = await shop.host()
    gid = await shop.goods(host_id)
    token = await shop.login()
    _, order = await _order(shop, token, gid, None)
    assert order["address"] is None
    url = f"{shop.url}/api/orders/{order['id']}/address"
    status, got = await http("PUT", url, json=ADDRESS, headers=bearer(token))
    assert status == 200
    assert got["address"]["cityName"] == "广州市"  # type: ignore[index]
    assert (await http("PUT", url, json=ADDRESS, headers=bearer(await shop.login())))[0] == 404
    await shop.pay(order)
    status, _ = await http(
        "POST", f"{shop.url}/api/host/orders/{order['id']}/ship",
        json={"carrier": "SF", "tracking_no": "SF1"}, headers=bearer(host_token),
    )  # fmt: skip
    assert status == 200
    assert (await http("PUT", url, json=ADDRESS, headers=bearer(token)))[0] == 409


async def test_paid_order_without_address_cannot_ship(shop: Shop) -> None:
    """No address: the order's host gets 409 address_required (another host 404), nothing
    changes; once the buyer adds it (PUT), the same ship succeeds and the buyer is told."""
    host_id, host_token = await shop.host()
    gid = await shop.goods(host_id)
    token = await shop.login()
    _, order = await _order(shop, token, gid, None)
    await shop.pay(order)
    ship = f"{shop.url}/api/host/orders/{order['id']}/ship"
    parcel = {"carrier": "SF", "tracking_no": "SF1"}
    status, body = await http("POST", ship, json=parcel, headers=bearer(host_token))
    assert (status, body["error"]["code"]) == (409, "address_required")  # type: ignore[index]
    _, other_host = await shop.host()
    assert (await http("POST", ship, json=parcel, headers=bearer(other_host)))[0] == 404
    row = await shop.pool.fetchrow("SELECT status, carrier FROM orders WHERE id = $1", order["id"])
    assert (row["status"], row["carrier"]) == ("paid", None)
    assert not await shop.pool.fetchval("SELECT 1 FROM notifications WHERE kind = 'order_shipped'")
    url = f"{shop.url}/api/orders/{order['id']}/address"
    assert (await http("PUT", url, json=ADDRESS, headers=bearer(token)))[0] == 200
    status, shipped = await http("POST", ship, json=parcel, headers=bearer(host_token))
    assert (status, shipped["status"]) == (200, "shipped")  # type: ignore[index]
    assert await shop.pool.fetchval("SELECT 1 FROM notifications WHERE kind = 'order_shipped'")


async def test_host_list_by_state_is_keyset_paginated_and_exports_csv(shop: Shop) -> None:
    """`state=paid` (to ship) pages newest first without repeats; the CSV has the same rows."""
    host_id, host_token = await shop.host()
    gid = await shop.goods(host_id, stock=20)
    token = await shop.login()
    paid = []
    for i in range(5):
        evil = {**ADDRESS, "detailInfo": "=HYPERLINK(1)"} if i == 0 else ADDRESS
        _, order = await _order(shop, token, gid, evil)
        await shop.pay(order)
        paid.append(order["id"])
    await _order(shop, token, gid)  # one left unpaid
    seen: list[int] = []
    cursor = ""
    while True:
        q = "?state=paid&limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await http(
            "GET", f"{shop.url}/api/host/orders{q}", headers=bearer(host_token)
        )
        assert status == 200, page
        seen += [o["id"] for o in page["items"]]  # type: ignore[index]
        cursor = page["next_cursor"]  # type: ignore[index]
        if not cursor:
            break
    assert seen == sorted(paid, reverse=True)
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{shop.url}/api/host/orders.csv?state=paid", headers=bearer(host_token)) as r,
    ):
        assert r.status == 200
        assert r.content_type == "text/csv"
        text = (await r.read()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(row["id"]) for row in rows] == seen
    assert rows[-1]["detailInfo"] == "'=HYPERLINK(1)"  # no formula injection
    assert rows[0]["telNumber"] == "13800138000"
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{shop.url}/api/host/orders.csv", headers=bearer(token)) as r,
    ):
        assert r.status == 403  # a user token is not a host token
