"""The points ledger: once-a-day check-in, share cap, purchase credit/reversal, spending, expiry."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from livecommerce import keys
from livecommerce.errors import Conflict
from livecommerce.social import points
from livecommerce.social.points import ledger
from livecommerce.social.refunds import refund_paid_order
from tests.social.conftest import Social


async def _grant(social: Social, user_id: int, amount: int, at: datetime | None = None,
                 days: int | None = None) -> None:  # fmt: skip
    cfg = social.app[keys.SETTINGS].points
    at = at or points.now()
    async with social.pool.acquire() as conn, conn.transaction():
        await ledger.credit(
            conn, cfg, user_id, "checkin", amount, "grant:" + secrets.token_hex(4), at,
            expires_at=None if days is None else at + timedelta(days=days),
        )  # fmt: skip


async def test_hundred_concurrent_checkins_credit_once(social: Social) -> None:
    """100 concurrent check-ins of one user on one day over HTTP: credited exactly once."""
    _, token = await social.user()
    results = await asyncio.gather(
        *(social.post("/api/points/actions", token, {"action": "checkin"}) for _ in range(100))
    )
    assert {s for s, _ in results} == {200}
    assert sum(1 for _, b in results if b["credited"]) == 1
    assert (await social.get("/api/points", token))[1] == {"balance": 10}
    assert await social.pool.fetchval("SELECT count(*) FROM points_entries") == 1


async def test_checkin_day_follows_the_configured_time_zone(social: Social) -> None:
    """Asia/Shanghai midnight is 16:00 UTC: check-ins either side of it are two days."""
    uid, _ = await social.user()
    cfg = social.app[keys.SETTINGS].points
    before = datetime(2030, 1, 1, 15, 59, 59, tzinfo=UTC)
    after = before + timedelta(seconds=1)
    async with social.pool.acquire() as conn:
        first = await points.checkin(conn, cfg, uid, at=before)
        again = await points.checkin(conn, cfg, uid, at=before - timedelta(hours=10))
        second = await points.checkin(conn, cfg, uid, at=after)
    assert (first["credited"], first["day"]) == (True, "2030-01-01")
    assert (again["credited"], again["day"]) == (False, "2030-01-01")
    assert (second["credited"], second["day"]) == (True, "2030-01-02")


async def test_share_is_once_per_goods_and_capped_per_day(social: Social) -> None:
    """Each goods counts once a day; the fourth distinct share of a day earns nothing."""
    host_id, _ = await social.shop.host()
    goods = [await social.shop.goods(host_id) for _ in range(5)]
    _, token = await social.user()
    answers = [
        (await social.post("/api/points/actions", token, {"action": "share", "goods_id": g}))[1]
        for g in [goods[0], goods[0], goods[1], goods[2], goods[3]]
    ]
    assert [a["credited"] for a in answers] == [True, False, True, True, False]
    assert [a.get("reason") for a in answers] == [None, "already_shared", None, None, "daily_cap"]
    assert answers[-1]["balance"] == 15


async def test_concurrent_spends_never_overdraw(social: Social) -> None:
    """20 concurrent checkouts spending 10 points each from 100 over HTTP: exactly 10 succeed."""
    uid, token = await social.user()
    await _grant(social, uid, 100)
    host_id, _ = await social.shop.host()
    gid = await social.shop.goods(host_id, stock=100, price_fen=1000)
    results = await asyncio.gather(
        *(
            social.post("/api/points/checkout", token,
                        {"goods_id": gid, "quantity": 1, "points": 10}, secrets.token_hex(6))
            for _ in range(20)
        )
    )  # fmt: skip
    created = [b for s, b in results if s == 201]
    assert len(created) == 10
    assert {b["error"]["code"] for s, b in results if s != 201} == {"insufficient_points"}
    assert all(b["total_fen"] == 990 and b["points_spent"] == 10 for b in created)
    assert await social.pool.fetchval("SELECT count(*) FROM orders") == 10
    assert await social.shop.stock(gid) == 90  # refused checkouts rolled their stock back
    assert (await social.get("/api/points", token))[1]["balance"] == 0
    assert await social.pool.fetchval("SELECT balance FROM points_accounts") == 0


async def test_checkout_replay_and_cancel_restore(social: Social) -> None:
    """A replayed checkout spends nothing more; cancelling the order restores its points."""
    uid, token = await social.user()
    await _grant(social, uid, 50)
    host_id, _ = await social.shop.host()
    gid = await social.shop.goods(host_id, price_fen=1000)
    body = {"goods_id": gid, "quantity": 1, "points": 30}
    s1, order = await social.post("/api/points/checkout", token, body, "k1")
    s2, again = await social.post("/api/points/checkout", token, body, "k1")
    assert (s1, s2, again["id"], again["points_spent"]) == (201, 200, order["id"], 30)
    assert (await social.get("/api/points", token))[1]["balance"] == 20
    too_much = {**body, "points": 501}
    status, err = await social.post("/api/points/checkout", token, too_much, "k2")
    assert (status, err["error"]["field"]) == (400, "points")
    assert (await social.post(f"/api/orders/{order['id']}/cancel", token))[0] == 200
    await social.settle()
    await social.settle()
    assert (await social.get("/api/points", token))[1]["balance"] == 50


async def test_refund_reverses_exactly_the_purchase_credit(social: Social) -> None:
    """Paying 123.45 yuan credits 123 points; its refund takes back exactly 123, once."""
    uid, token = await social.user()
    await _grant(social, uid, 7)
    host_id, _ = await social.shop.host()
    gid = await social.shop.goods(host_id, price_fen=12345)
    _, order = await social.shop.order(token, gid)
    await social.shop.pay(order)
    await social.settle()
    assert (await social.get("/api/points", token))[1]["balance"] == 130
    async with social.pool.acquire() as conn:
        assert await refund_paid_order(conn, order["id"], "test")
    await social.settle()
    await social.settle()
    assert (await social.get("/api/points", token))[1]["balance"] == 7
    kinds = await social.pool.fetch(
        "SELECT kind, delta FROM points_entries WHERE order_id = $1 ORDER BY id", order["id"]
    )
    assert [(r["kind"], r["delta"]) for r in kinds] == [
        ("purchase", 123),
        ("purchase_reversal", -123),
    ]


async def test_expiry_at_the_boundary_and_soonest_first(social: Social) -> None:
    """A lot counts until the instant it expires; spending takes the soonest-expiring lot first."""
    uid, _ = await social.user()
    cfg = social.app[keys.SETTINGS].points
    t0 = datetime(2031, 6, 1, tzinfo=UTC)
    await _grant(social, uid, 10, at=t0, days=30)
    await _grant(social, uid, 20, at=t0, days=10)
    soon, late = t0 + timedelta(days=10), t0 + timedelta(days=30)
    async with social.pool.acquire() as conn:
        assert await points.balance(conn, uid, soon - timedelta(microseconds=1)) == 30
        assert await points.balance(conn, uid, soon) == 10
        async with conn.transaction():
            await points.spend(conn, cfg, uid, 15, order_id=999, at=t0)
        lots = await conn.fetch("SELECT amount, remaining FROM points_lots ORDER BY expires_at")
        assert [(r["amount"], r["remaining"]) for r in lots] == [(20, 5), (10, 10)]
    assert await points.expire_due(social.pool, cfg, 10, at=soon) == 1
    assert await points.expire_due(social.pool, cfg, 10, at=soon) == 0
    async with social.pool.acquire() as conn:
        assert await points.balance(conn, uid, soon) == 10
        assert await points.balance(conn, uid, late) == 0
        assert await conn.fetchval("SELECT balance FROM points_accounts") == 10
        expired = await conn.fetchval("SELECT delta FROM points_entries WHERE kind = 'expire'")
        assert expired == -5
        with pytest.raises(Conflict, match="not enough points"):
            async with conn.transaction():
                await points.spend(conn, cfg, uid, 11, order_id=1000, at=soon)


async def test_entries_are_immutable(social: Social) -> None:
    """The ledger refuses UPDATE and DELETE of an entry."""
    uid, _ = await social.user()
    await _grant(social, uid, 5)
    with pytest.raises(asyncpg.RestrictViolationError):
        await social.pool.execute("UPDATE points_entries SET delta = 500")
    with pytest.raises(asyncpg.RestrictViolationError):
        await social.pool.execute("DELETE FROM points_entries")


async def test_history_pages_and_expiring_lots(social: Social) -> None:
    """History pages newest first with a cursor; expiring lists lots inside the window."""
    uid, token = await social.user()
    for _ in range(5):
        await _grant(social, uid, 1)
    await _grant(social, uid, 3, days=5)
    _, page1 = await social.get("/api/points/history?limit=4", token)
    assert len(page1["items"]) == 4
    assert page1["next_cursor"]
    _, page2 = await social.get(f"/api/points/history?limit=4&cursor={page1['next_cursor']}", token)
    ids = [e["id"] for e in page1["items"] + page2["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 6
    _, soon = await social.get("/api/points/expiring?days=7", token)
    assert (soon["points"], len(soon["lots"])) == (3, 1)
    status, _ = await social.get("/api/points/history?cursor=forged", token)
    assert status == 400
