"""The same idempotency key with a different request is 409 on every endpoint taking one (13.12).

For each endpoint: the first request succeeds (201), the identical replay answers the first
result (200, or 409 ``duplicate_schedule`` where any reuse is refused), and the key reused with
a different body or target is refused — without creating or publishing anything more.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from livecommerce import keys
from livecommerce import redis_keys as rk
from livecommerce.social.points import ledger
from tests.social.conftest import Social, bearer
from tests.support import http

REUSED = "idempotency_key_reused"


def _iso(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


@dataclass
class Case:
    """One endpoint: where to send (path, body, headers) the first request and its variants."""

    first: tuple[str, Any]
    replay_status: int
    variants: list[tuple[str, Any]]
    key_in_body: bool = False
    token: str | None = None  # a host's token (default: the user's)


async def _post(social: Social, token: str, path: str, body: Any, key: str, in_body: bool) -> Any:
    headers = bearer(token)
    if in_body:
        body = {**body, "idempotency_key": key}
    else:
        headers["Idempotency-Key"] = key
    return await http("POST", social.url + path, json=body, headers=headers)


async def _live_room(social: Social) -> tuple[str, int, list[int]]:
    host_id, token = await social.shop.host()
    goods = [await social.shop.goods(host_id, stock=100) for _ in range(2)]
    room = await social.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state, started_at) VALUES ($1, 'r', 'live', now())"
        " RETURNING id",
        host_id,
    )
    await social.pool.executemany(
        "INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, $3)",
        [(room, g, i) for i, g in enumerate(goods)],
    )
    return token, room, goods


async def _sales(social: Social, n: int) -> list[int]:
    host_id, token = await social.shop.host()
    out = []
    for _ in range(n):
        goods = await social.shop.goods(host_id, stock=100)
        status, sale = await social.post(
            "/api/host/flash-sales", token,
            {"goods_id": goods, "sale_price_fen": 100, "stock": 50, "per_user_limit": 5,
             "starts_at": _iso(-60), "ends_at": _iso(3600)},
        )  # fmt: skip
        assert status == 201, sale
        out.append(sale["id"])
    return out


async def _offers(social: Social, n: int) -> list[int]:
    host_id, token = await social.shop.host()
    out = []
    for _ in range(n):
        goods = await social.shop.goods(host_id, stock=100, price_fen=5000)
        status, offer = await social.post(
            "/api/host/group-offers", token,
            {"goods_id": goods, "group_price_fen": 3000, "size": 3, "fill_seconds": 3600},
        )  # fmt: skip
        assert status == 201, offer
        out.append(offer["id"])
    return out


async def _open_groups(social: Social, n: int) -> list[int]:
    """``n`` open (leader paid) groups of one offer."""
    (offer,) = await _offers(social, 1)
    out = []
    for _ in range(n):
        _, leader = await social.user()
        status, opened = await social.post(
            f"/api/group-offers/{offer}/groups", leader, None, secrets.token_hex(6)
        )
        assert status == 201, opened
        await social.shop.pay(opened["order"])
        out.append(opened["group_id"])
    await social.settle()
    return out


async def _orders(social: Social, user_id: int) -> Case:
    host_id, _ = await social.shop.host()
    g1, g2 = [await social.shop.goods(host_id, stock=100) for _ in range(2)]
    body = {"goods_id": g1, "quantity": 1}
    return Case(("/api/orders", body), 200,
                [("/api/orders", {**body, "quantity": 2}), ("/api/orders", {**body, "goods_id": g2})])  # fmt: skip


async def _room_push(social: Social, user_id: int) -> Case:
    token, room, (g1, g2) = await _live_room(social)
    path, body = f"/api/rooms/{room}/push", {"goods_id": g1, "show_seconds": 10}
    return Case((path, body), 200,
                [(path, {**body, "goods_id": g2}), (path, {**body, "show_seconds": 11})],
                key_in_body=True, token=token)  # fmt: skip


async def _schedule(social: Social, user_id: int) -> Case:
    token, room, (g1, g2) = await _live_room(social)
    path, at = f"/api/rooms/{room}/schedules", _iso(3600)
    body = {"goods_id": g1, "at": at}
    return Case((path, body), 409,
                [(path, {**body, "goods_id": g2}), (path, {**body, "at": _iso(7200)})],
                key_in_body=True, token=token)  # fmt: skip


async def _flash_buy(social: Social, user_id: int) -> Case:
    s1, s2 = await _sales(social, 2)
    return Case((f"/api/flash-sales/{s1}/buy", {"quantity": 1}), 200,
                [(f"/api/flash-sales/{s1}/buy", {"quantity": 2}),
                 (f"/api/flash-sales/{s2}/buy", {"quantity": 1})])  # fmt: skip


async def _points_checkout(social: Social, user_id: int) -> Case:
    cfg = social.app[keys.SETTINGS].points
    async with social.pool.acquire() as conn, conn.transaction():
        await ledger.credit(conn, cfg, user_id, "checkin", 500, "grant", ledger.now())
    host_id, _ = await social.shop.host()
    g1, g2 = [await social.shop.goods(host_id, stock=100, price_fen=1000) for _ in range(2)]
    path, body = "/api/points/checkout", {"goods_id": g1, "quantity": 1, "points": 30}
    return Case((path, body), 200,
                [(path, {**body, "points": 20}), (path, {**body, "points": 0}),
                 (path, {**body, "quantity": 2}), (path, {**body, "goods_id": g2})])  # fmt: skip


async def _group_open(social: Social, user_id: int) -> Case:
    o1, o2 = await _offers(social, 2)
    return Case((f"/api/group-offers/{o1}/groups", None), 200,
                [(f"/api/group-offers/{o2}/groups", None)])  # fmt: skip


async def _group_join(social: Social, user_id: int) -> Case:
    g1, g2 = await _open_groups(social, 2)
    (offer,) = await _offers(social, 1)
    return Case((f"/api/groups/{g1}/join", None), 200,
                [(f"/api/groups/{g2}/join", None), (f"/api/group-offers/{offer}/groups", None)])  # fmt: skip


CASES: dict[str, Callable[[Social, int], Awaitable[Case]]] = {
    "orders": _orders,
    "room push": _room_push,
    "schedules": _schedule,
    "flash-sale buy": _flash_buy,
    "points checkout": _points_checkout,
    "group open": _group_open,
    "group join": _group_join,
}


async def _counts(social: Social) -> tuple[int, ...]:
    pool = social.pool
    return (
        await pool.fetchval("SELECT count(*) FROM orders"),
        await pool.fetchval("SELECT count(*) FROM live_schedules"),
        await pool.fetchval("SELECT count(*) FROM groups"),
        await pool.fetchval("SELECT count(*) FROM points_entries"),
        await pool.fetchval("SELECT coalesce(sum(sold), 0) FROM flash_sales"),
    )


@pytest.mark.parametrize("name", list(CASES))
async def test_same_key_different_request_is_409(social: Social, name: str) -> None:
    """First 201, identical replay the first answer, the key with another request 409."""
    user_id, token = await social.user()
    case = await CASES[name](social, user_id)
    token = case.token or token
    key = "key-" + secrets.token_hex(4)
    path, body = case.first
    status, first = await _post(social, token, path, body, key, case.key_in_body)
    assert status == 201, first
    await social.settle()
    before = await _counts(social)
    status, again = await _post(social, token, path, body, key, case.key_in_body)
    assert status == case.replay_status, again
    if status == 200:
        assert (
            again == first
            or again.get("id") == first.get("id")
            or (again.get("seq") == first.get("seq") and again.get("duplicate") is True)
        ), (first, again)
    for vpath, vbody in case.variants:
        status, answer = await _post(social, token, vpath, vbody, key, case.key_in_body)
        expected = "duplicate_schedule" if name == "schedules" else REUSED
        assert (status, answer["error"]["code"]) == (409, expected), (vpath, vbody, answer)
    await social.settle()
    assert await _counts(social) == before


async def test_room_push_key_reuse_publishes_nothing(social: Social) -> None:
    """A push key reused for other goods publishes no frame (the room's seq does not move)."""
    token, room, (g1, g2) = await _live_room(social)
    path = f"/api/rooms/{room}/push"
    first = await _post(social, token, path, {"goods_id": g1}, "k", True)
    assert first[0] == 201
    seq = await social.app[keys.REDIS].get(rk.room_seq(room))
    status, body = await _post(social, token, path, {"goods_id": g2}, "k", True)
    assert (status, body["error"]["code"]) == (409, REUSED)
    assert await social.app[keys.REDIS].get(rk.room_seq(room)) == seq
