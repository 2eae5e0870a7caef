"""Orders over real HTTP: snapshot, stock reservation, idempotency, state machine, ownership."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from livecommerce.commerce import orders
from livecommerce.config import Settings
from tests.commerce.conftest import Shop, bearer
from tests.support import AppServer, http


async def test_order_lifecycle(shop: Shop) -> None:
    """pending_payment -> paid (notification) -> shipped (host) -> completed (buyer)."""
    host_id, host = await shop.host()
    gid = await shop.goods(host_id, stock=5, price_fen=1234)
    token = await shop.login()
    status, order = await shop.order(token, gid, quantity=2)
    assert status == 201
    assert (order["status"], order["unit_price_fen"], order["total_fen"]) == (
        "pending_payment",
        1234,
        2468,
    )
    assert await shop.stock(gid) == 3
    # The price is snapshotted: a later price change does not touch the order.
    await shop.pool.execute("UPDATE goods SET price_fen = 1 WHERE id = $1", gid)
    oid = order["id"]
    sent = await shop.pay(order)
    assert sent["notify_status"] == 200
    _, order = await http("GET", f"{shop.url}/api/orders/{oid}", headers=bearer(token))
    assert (order["status"], order["total_fen"]) == ("paid", 2468)  # type: ignore[index]
    ship = {"carrier": "SF", "tracking_no": "SF123"}
    url = f"{shop.url}/api/host/orders/{oid}/ship"
    status, order = await http("POST", url, json=ship, headers=bearer(host))
    assert (status, order["status"], order["carrier"]) == (200, "shipped", "SF")  # type: ignore[index]
    status, order = await http(
        "POST", f"{shop.url}/api/orders/{oid}/confirm", headers=bearer(token)
    )
    assert (status, order["status"]) == (200, "completed")  # type: ignore[index]
    assert await shop.stock(gid) == 3


async def test_illegal_transitions_are_409(shop: Shop) -> None:
    """Confirming or shipping an unpaid order, cancelling a paid one: 409, state unchanged."""
    host_id, host = await shop.host()
    gid = await shop.goods(host_id)
    token = await shop.login()
    _, order = await shop.order(token, gid)
    oid = order["id"]
    ship = {"carrier": "SF", "tracking_no": "1"}
    for method, url, tok, body in [
        ("POST", f"/api/orders/{oid}/confirm", token, None),
        ("POST", f"/api/host/orders/{oid}/ship", host, ship),
    ]:
        status, err = await http(method, shop.url + url, json=body, headers=bearer(tok))
        assert (status, err["error"]["code"]) == (409, "illegal_transition")  # type: ignore[index]
    await shop.pay(order)
    status, _ = await http("POST", f"{shop.url}/api/orders/{oid}/cancel", headers=bearer(token))
    assert status == 409
    status, order = await http("GET", f"{shop.url}/api/orders/{oid}", headers=bearer(token))
    assert order["status"] == "paid"  # type: ignore[index]


async def test_cancel_releases_stock_once(shop: Shop) -> None:
    """Cancelling gives the stock back; cancelling again is 409 and gives nothing more."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=3)
    token = await shop.login()
    _, order = await shop.order(token, gid, quantity=3)
    assert await shop.stock(gid) == 0
    url = f"{shop.url}/api/orders/{order['id']}/cancel"
    status, body = await http("POST", url, headers=bearer(token))
    assert (status, body["status"]) == (200, "cancelled")  # type: ignore[index]
    assert (await http("POST", url, headers=bearer(token)))[0] == 409
    assert await shop.stock(gid) == 3


async def test_other_users_orders_are_404(shop: Shop) -> None:
    """Another user's order id answers 404 (not 403) to read and cancel; lists are private."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id)
    alice, bob = await shop.login("alice"), await shop.login("bob")
    _, order = await shop.order(alice, gid)
    oid = order["id"]
    for method, path in [("GET", f"/api/orders/{oid}"), ("POST", f"/api/orders/{oid}/cancel")]:
        status, body = await http(method, shop.url + path, headers=bearer(bob))
        assert (status, body["error"]["code"]) == (404, "not_found")  # type: ignore[index]
    _, h2 = await shop.host()
    status, _ = await http(
        "POST",
        f"{shop.url}/api/host/orders/{oid}/ship",
        json={"carrier": "a", "tracking_no": "b"},
        headers=bearer(h2),
    )
    assert status == 404
    _, page = await http("GET", shop.url + "/api/orders", headers=bearer(bob))
    assert page == {"items": [], "next_cursor": None}
    assert (await http("GET", f"{shop.url}/api/orders/{oid}", headers=bearer(alice)))[0] == 200


async def test_idempotent_create_returns_the_same_order(shop: Shop) -> None:
    """A retried create with the same key returns the first order (200) and reserves once."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=10)
    token = await shop.login()
    first = await shop.order(token, gid, 2, key="k1")
    again = await shop.order(token, gid, 2, key="k1")
    assert (first[0], again[0]) == (201, 200)
    assert first[1]["id"] == again[1]["id"]
    assert await shop.stock(gid) == 8
    status, err = await shop.order(token, gid, 3, key="k1")
    assert (status, err["error"]["code"]) == (409, "idempotency_key_reused")
    # The same key of another user is another order.
    other = await shop.login()
    assert (await shop.order(other, gid, 2, key="k1"))[0] == 201


async def test_concurrent_same_key_creates_one_order(shop: Shop) -> None:
    """20 simultaneous retries of one create make exactly one order and one reservation."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=100)
    token = await shop.login()
    results = await asyncio.gather(*(shop.order(token, gid, 1, key="same") for _ in range(20)))
    assert {r[1]["id"] for r in results} == {results[0][1]["id"]}
    assert sorted(r[0] for r in results).count(201) == 1
    assert await shop.stock(gid) == 99


async def test_concurrent_creates_never_oversell(shop: Shop) -> None:
    """50 buyers race for stock 10: exactly 10 orders, 40 sold_out, stock ends at 0."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=10)
    tokens = [await shop.login() for _ in range(50)]
    results = await asyncio.gather(*(shop.order(t, gid) for t in tokens))
    statuses = sorted(r[0] for r in results)
    assert statuses.count(201) == 10
    assert statuses.count(409) == 40
    assert {r[1]["error"]["code"] for r in results if r[0] == 409} == {"sold_out"}
    assert await shop.stock(gid) == 0
    held = await shop.pool.fetchval("SELECT sum(quantity) FROM orders WHERE goods_id = $1", gid)
    assert held == 10


@pytest.mark.parametrize(
    ("body", "headers", "status", "field"),
    [
        ({"goods_id": 1, "quantity": 1}, {}, 400, "Idempotency-Key"),
        ({"goods_id": 1, "quantity": 1}, {"Idempotency-Key": "bad key!"}, 400, "Idempotency-Key"),
        ({"goods_id": 1, "quantity": 1}, {"Idempotency-Key": "k" * 65}, 400, "Idempotency-Key"),
        ({"goods_id": 1, "quantity": 0}, {"Idempotency-Key": "k"}, 400, "quantity"),
        ({"goods_id": 1, "quantity": 100}, {"Idempotency-Key": "k"}, 400, "quantity"),
        ({"goods_id": 1, "quantity": 1.5}, {"Idempotency-Key": "k"}, 400, "quantity"),
        ({"goods_id": "1", "quantity": 1}, {"Idempotency-Key": "k"}, 400, "goods_id"),
        ({"goods_id": 2**63, "quantity": 1}, {"Idempotency-Key": "k"}, 400, "goods_id"),
        ({"quantity": 1}, {"Idempotency-Key": "k"}, 400, "goods_id"),
        (
            {"goods_id": 1, "quantity": 1, "price_fen": 1},
            {"Idempotency-Key": "k"},
            400,
            "price_fen",
        ),
    ],
)
async def test_bad_order_requests_name_the_field(
    shop: Shop, body: dict[str, Any], headers: dict[str, str], status: int, field: str
) -> None:
    """Malformed creates are 400 naming the field (the client can never set a price)."""
    token = await shop.login()
    got, err = await http(
        "POST", shop.url + "/api/orders", json=body, headers={**bearer(token), **headers}
    )
    assert (got, err["error"]["field"]) == (status, field)  # type: ignore[index]


async def test_order_auth_and_unknown_goods(shop: Shop) -> None:
    """No token 401, host token 403, unknown/draft goods 404, off-sale 409."""
    host_id, host = await shop.host()
    draft = await shop.goods(host_id, status="draft")
    off = await shop.goods(host_id, status="off_sale")
    token = await shop.login()
    body = {"goods_id": draft, "quantity": 1}
    assert (await http("POST", shop.url + "/api/orders", json=body))[0] == 401
    hdr = {**bearer(host), "Idempotency-Key": "k"}
    assert (await http("POST", shop.url + "/api/orders", json=body, headers=hdr))[0] == 403
    assert (await shop.order(token, draft))[0] == 404
    assert (await shop.order(token, 10**12))[0] == 404
    status, err = await shop.order(token, off)
    assert (status, err["error"]["code"]) == (409, "not_on_sale")


async def test_list_orders_pages_and_filters(shop: Shop) -> None:
    """The caller's orders come newest first in keyset pages, filterable by status."""
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=50)
    token = await shop.login()
    ids = [(await shop.order(token, gid))[1]["id"] for _ in range(5)]
    await http("POST", f"{shop.url}/api/orders/{ids[0]}/cancel", headers=bearer(token))
    seen: list[int] = []
    url: str | None = shop.url + "/api/orders?limit=2"
    while url:
        status, page = await http("GET", url, headers=bearer(token))
        assert status == 200
        assert isinstance(page, dict)
        seen += [o["id"] for o in page["items"]]  # type: ignore[attr-defined]
        nxt = page["next_cursor"]
        url = None if nxt is None else f"{shop.url}/api/orders?limit=2&cursor={nxt}"
    assert seen == ids[::-1]
    _, page = await http("GET", shop.url + "/api/orders?status=cancelled", headers=bearer(token))
    assert [o["id"] for o in page["items"]] == [ids[0]]  # type: ignore[index]
    bad = await http("GET", shop.url + "/api/orders?status=lost", headers=bearer(token))
    assert (bad[0], bad[1]["error"]["field"]) == (400, "status")  # type: ignore[index]


async def test_unpaid_orders_auto_cancel_and_release_stock(
    make_server: Callable[..., Any], settings: Settings, pool: asyncpg.Pool
) -> None:
    """With a 1 s payment window the reaper cancels the order and gives its stock back."""
    fast = dataclasses.replace(
        settings, orders=dataclasses.replace(settings.orders, payment_timeout_seconds=1.0)
    )
    srv: AppServer = await make_server(fast)
    shop = Shop(srv, pool)
    host_id, _ = await shop.host()
    gid = await shop.goods(host_id, stock=2)
    token = await shop.login()
    _, order = await shop.order(token, gid, quantity=2)
    assert await shop.stock(gid) == 0
    for _ in range(200):
        _, order = await http("GET", f"{shop.url}/api/orders/{order['id']}", headers=bearer(token))
        if order["status"] != "pending_payment":  # type: ignore[index]
            break
        await asyncio.sleep(0.1)
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "payment_timeout")  # type: ignore[index]
    assert await shop.stock(gid) == 2


async def test_concurrent_sweepers_cancel_each_order_once(pool: asyncpg.Pool) -> None:
    """Three nodes sweeping at once (SKIP LOCKED) cancel each order once and restore the stock."""
    host_id = await pool.fetchval("INSERT INTO hosts (name) VALUES ('h') RETURNING id")
    gids = [
        await pool.fetchval(
            "INSERT INTO goods (host_id, title, price_fen, stock) VALUES ($1, 'g', 100, 100)"
            " RETURNING id",
            host_id,
        )
        for _ in range(3)
    ]
    users = [
        await pool.fetchval("INSERT INTO users (openid) VALUES ($1) RETURNING id", f"o{i}")
        for i in range(4)
    ]
    async with pool.acquire() as conn:
        for i in range(30):
            _, created = await orders.create_order(
                conn,
                user_id=users[i % 4],
                goods_id=gids[i % 3],
                quantity=1 + i % 2,
                idempotency_key=f"k{i}",
                payment_timeout_seconds=0.001,
            )
            assert created
    await asyncio.sleep(0.01)

    async def sweeper() -> list[int]:
        done: list[int] = []
        async with pool.acquire() as conn:
            while batch := await orders.expire_due(conn, 4):
                done += batch
        return done

    results = await asyncio.gather(sweeper(), sweeper(), sweeper())
    cancelled = [oid for r in results for oid in r]
    assert len(cancelled) == len(set(cancelled)) == 30
    stocks = [await pool.fetchval("SELECT stock FROM goods WHERE id = $1", g) for g in gids]
    assert stocks == [100, 100, 100]
