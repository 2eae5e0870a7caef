"""A route that takes no body (e.g. `POST /api/orders/{id}/pay`) answers a malformed or
non-empty body with the same 400 as every other route, instead of ignoring it; no body or `{}`
is accepted."""

from __future__ import annotations

from tests.commerce.conftest import Shop, bearer
from tests.support import http


async def test_a_route_without_a_body_refuses_one_but_takes_nothing_or_empty(shop: Shop) -> None:
    host_id, _ = await shop.host()
    goods_id = await shop.goods(host_id)
    token = await shop.login("bodiless")
    status, order = await shop.order(token, goods_id, quantity=1)
    assert status == 201, order
    assert isinstance(order, dict)
    pay = f"{shop.url}/api/orders/{order['id']}/pay"
    headers = {**bearer(token), "Content-Type": "application/json"}
    status, body = await http("POST", pay, data=b'{"amount": ', headers=headers)
    assert status == 400, body
    assert isinstance(body, dict)
    assert body["error"]["code"] == "invalid", body
    assert body["error"]["field"] == "body", body
    status, body = await http("POST", pay, json={"total_fen": 1}, headers=bearer(token))
    assert status == 400, body
    assert isinstance(body, dict)
    assert body["error"]["field"] == "total_fen", body
    # Nothing was paid or prepared by the refused calls; an empty object and no body both work.
    assert await shop.pool.fetchval("SELECT status FROM orders WHERE id = $1", order["id"]) == (
        "pending_payment"
    )
    status, first = await http("POST", pay, json={}, headers=bearer(token))
    assert status in (200, 201), first
    status, again = await http("POST", pay, headers=bearer(token))
    assert status in (200, 201), again
    assert isinstance(first, dict)
    assert isinstance(again, dict)
    assert first["prepay_id"] == again["prepay_id"]  # the same prepay, asked twice


async def test_a_truncated_body_is_invalid_json_not_an_unknown_field(shop: Shop) -> None:
    """msgspec meets the unknown field before the end of a truncated body; the answer still
    says the body is not JSON."""
    _, token = await shop.host()
    status, body = await http(
        "POST", f"{shop.url}/api/goods", data=b'{"nonsense": ',
        headers={**bearer(token), "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 400, body
    assert isinstance(body, dict)
    assert (body["error"]["field"], body["error"]["message"]) == (
        "body",
        "body: must be valid JSON",
    )
