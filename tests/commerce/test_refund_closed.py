"""Refunds WeChat Pay closes (REFUND.CLOSED: the buyer was not paid back): the money can be
refunded again, the order says so, the points come back once, replays and races change nothing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from livecommerce import keys
from livecommerce.commerce import refunds
from livecommerce.devtools.fake_wechat import FakeWechat
from livecommerce.social import events
from livecommerce.social.refunds import refund_paid_order
from tests.commerce.conftest import Shop, bearer
from tests.social.conftest import iso as _iso
from tests.support import http


def _fake(shop: Shop) -> FakeWechat:
    return shop.server.app[keys.FAKE_WECHAT]


async def _apply_events(shop: Shop) -> None:
    """Apply every pending order event (points, groups), as the social worker does."""
    app = shop.server.app
    deps = events.Deps(app[keys.SETTINGS], app[keys.FLASH_STOCK])
    for _ in range(200):
        await events.drain(shop.pool, deps)
        if await events.pending(shop.pool) == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("order events did not settle")


async def _paid(shop: Shop, price_fen: int = 10_000) -> tuple[dict[str, Any], str, str, int]:
    """A paid order (100 purchase points at 1 point a yuan), events applied:
    (order, buyer token, host token, goods id)."""
    host_id, host_token = await shop.host()
    gid = await shop.goods(host_id, stock=5, price_fen=price_fen)
    token = await shop.login()
    status, order = await shop.order(token, gid)
    assert status == 201, order
    # The real flow (prepay, then the fake's payment), so WeChat's refund notifications come.
    _, started = await http(
        "POST", f"{shop.url}/api/orders/{order['id']}/pay", headers=bearer(token)
    )
    assert isinstance(started, dict)
    status, sent = await http(
        "POST", shop.fake_url + "/dev/pay", json={"payment": started["payment"]}
    )
    assert status == 200
    assert sent["notify_status"] == 200  # type: ignore[index]
    await _apply_events(shop)
    return order, token, host_token, gid


async def _goodwill(
    shop: Shop, host_token: str, order_id: int, amount: int | None, key: str
) -> tuple[int, Any]:
    body: dict[str, Any] = {"reason": "dented box"}
    if amount is not None:
        body["amount_fen"] = amount
    return await http(
        "POST", f"{shop.url}/api/host/orders/{order_id}/refunds", json=body,
        headers={**bearer(host_token), "Idempotency-Key": key},
    )  # fmt: skip


async def _refunds(shop: Shop, order_id: int) -> list[dict[str, Any]]:
    rows = await shop.pool.fetch("SELECT * FROM refunds WHERE order_id = $1 ORDER BY id", order_id)
    return [dict(r) for r in rows]


async def _wait(shop: Shop, order_id: int, status: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until ``count`` refunds of the order are in ``status`` (the worker runs them)."""
    for _ in range(300):
        rows = await _refunds(shop, order_id)
        if sum(r["status"] == status for r in rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"refunds of {order_id}: {await _refunds(shop, order_id)}")


async def _settle(shop: Shop, status: str = "SUCCESS", **only: str) -> list[str]:
    """The fake WeChat ends its PROCESSING refunds (or ``out_refund_no``) in ``status``."""
    code, body = await http(
        "POST", shop.fake_url + "/dev/refunds/settle", json={"status": status, **only}
    )
    assert code == 200, body
    settled: list[str] = body["settled"]  # type: ignore[index]
    return settled


async def _run_due(shop: Shop) -> None:
    """Make every waiting refund due now (a re-issue waits a backoff) and wake the worker."""
    await shop.pool.execute("UPDATE refunds SET next_attempt_at = now()")
    shop.server.app[keys.REFUND_WORKER].poke()


async def _order_status(shop: Shop, order_id: int) -> str:
    value: str = await shop.pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
    return value


async def _balance(shop: Shop, token: str) -> int:
    status, body = await http("GET", shop.url + "/api/points", headers=bearer(token))
    assert status == 200, body
    value: int = body["balance"]  # type: ignore[index]
    return value


async def _ledger(shop: Shop, order_id: int) -> list[tuple[str, int, int]]:
    rows = await shop.pool.fetch(
        """SELECT kind, delta, shortfall FROM points_entries
           WHERE order_id = $1 AND kind <> 'purchase' ORDER BY id""",
        order_id,
    )
    return [(r["kind"], r["delta"], r["shortfall"]) for r in rows]


async def _notices(shop: Shop, order_id: int) -> list[str]:
    rows = await shop.pool.fetch(
        "SELECT kind FROM notifications WHERE (payload->>'order_id')::bigint = $1 ORDER BY id",
        order_id,
    )
    return [r["kind"] for r in rows]


async def _host_orders(shop: Shop, host_token: str, state: str | None = None) -> list[Any]:
    url = shop.url + "/api/host/orders" + (f"?state={state}" if state else "")
    status, body = await http("GET", url, headers=bearer(host_token))
    assert status == 200, body
    items: list[Any] = body["items"]  # type: ignore[index]
    return items


async def _replay_refund_notice(shop: Shop, notice: dict[str, Any]) -> tuple[int, Any]:
    return await http(
        "POST", shop.url + "/api/pay/wechat/refund-notify",
        data=notice["notify_body"].encode(), headers=notice["notify_headers"],
    )  # fmt: skip


async def test_goodwill_full_refund_closed_can_be_refunded_again(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    """A full goodwill refund WeChat closes: the order goes back to paid and refundable, the
    100 points come back once (replays change nothing), the host sees it; a second refund
    succeeds and takes the points once."""
    order, token, host_token, _ = await _paid(shop)
    oid = order["id"]
    assert await _balance(shop, token) == 100
    status, first = await _goodwill(shop, host_token, oid, None, "k1")
    assert (status, first["amount_fen"]) == (201, 10_000)
    assert await _order_status(shop, oid) == "refunded"
    await _wait(shop, oid, "processing")
    await _apply_events(shop)
    assert await _balance(shop, token) == 0
    with caplog.at_level(logging.ERROR, logger="livecommerce.refunds"):
        assert await _settle(shop, "CLOSED") == [first["out_refund_no"]]
        rows = await _wait(shop, oid, "closed")
    lines = [r.getMessage() for r in caplog.records if "CLOSED by WeChat Pay" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"of order {oid} " in lines[0]
    assert "order back to paid" in lines[0]
    assert rows[0]["last_error"] == refunds.CLOSED_NOTE
    assert await _order_status(shop, oid) == "paid"
    order_now = await shop.pool.fetchrow(
        "SELECT refunded_at, cancel_reason FROM orders WHERE id = $1", oid
    )
    assert tuple(order_now) == (None, None)
    await _apply_events(shop)
    assert await _balance(shop, token) == 100
    assert await _ledger(shop, oid) == [
        ("purchase_reversal", -100, 0),
        ("purchase_restore", 100, 0),
    ]
    # The buyer is told (once); the host's order list shows the closed refund and lists the
    # order under refund_issues.
    assert (await _notices(shop, oid)).count("refund_closed") == 1
    listed = await _host_orders(shop, host_token, "refund_issues")
    assert [o["id"] for o in listed] == [oid]
    issue = listed[0]["refund_issues"][0]
    assert (issue["status"], issue["amount_fen"], issue["next_refund_id"]) == (
        "closed",
        10_000,
        None,
    )
    assert issue["reason"] == "goodwill: dented box"
    assert issue["last_error"] == refunds.CLOSED_NOTE
    # WeChat's closed notification again (and again): nothing more happens.
    notice = _fake(shop).refund_notices[-1]
    for _ in range(3):
        assert await _replay_refund_notice(shop, notice) == (
            200, {"code": "SUCCESS", "message": "already processed"})  # fmt: skip
    await _apply_events(shop)
    assert await _balance(shop, token) == 100
    assert len(await _ledger(shop, oid)) == 2
    assert (await _notices(shop, oid)).count("refund_closed") == 1
    assert await _order_status(shop, oid) == "paid"
    # The same Idempotency-Key is the same (closed) refund; a new one refunds the money again.
    status, replay = await _goodwill(shop, host_token, oid, None, "k1")
    assert (status, replay["id"], replay["status"]) == (200, first["id"], "closed")
    status, second = await _goodwill(shop, host_token, oid, None, "k2")
    assert (status, second["amount_fen"]) == (201, 10_000)
    assert second["out_refund_no"] != first["out_refund_no"]
    assert await _order_status(shop, oid) == "refunded"
    await _wait(shop, oid, "processing")
    assert await _settle(shop) == [second["out_refund_no"]]
    await _wait(shop, oid, "success")
    await _apply_events(shop)
    assert await _balance(shop, token) == 0
    assert await _ledger(shop, oid) == [
        ("purchase_reversal", -100, 0), ("purchase_restore", 100, 0), ("purchase_reversal", -100, 0)
    ]  # fmt: skip
    assert await _order_status(shop, oid) == "refunded"
    wechat = _fake(shop).refunds
    assert sorted(r.status for r in wechat.values()) == ["CLOSED", "SUCCESS"]
    assert sum(r.refund for r in wechat.values() if r.status == "SUCCESS") == 10_000
    # Money is never refunded twice: nothing is left to refund.
    assert (await _goodwill(shop, host_token, oid, None, "k3"))[0] == 409
    issue = (await _host_orders(shop, host_token))[0]["refund_issues"][0]
    assert issue["next_refund_id"] == second["id"]
    assert await _host_orders(shop, host_token, "refund_issues") == []


async def test_partial_refund_closed_then_partial_success_adds_up(shop: Shop) -> None:
    """30 yuan refunded and closed, 30 refunded and succeeded, then all the rest: 100 yuan
    refunded in all (the closed 30 never counted), 100 points reversed in all."""
    order, token, host_token, _ = await _paid(shop)
    oid = order["id"]
    assert (await _goodwill(shop, host_token, oid, 3000, "p1"))[0] == 201
    await _wait(shop, oid, "processing")
    await _apply_events(shop)
    assert await _balance(shop, token) == 70
    await _settle(shop, "CLOSED")
    await _wait(shop, oid, "closed")
    assert await _order_status(shop, oid) == "paid"  # it never left paid
    await _apply_events(shop)
    assert await _balance(shop, token) == 100
    # All that is left is the whole payment again.
    status, body = await _goodwill(shop, host_token, oid, 10_001, "too-much")
    assert (status, body["error"]["code"]) == (409, "refund_exceeds_payment")
    assert (await _goodwill(shop, host_token, oid, 3000, "p2"))[0] == 201
    await _wait(shop, oid, "processing")
    await _settle(shop)
    await _wait(shop, oid, "success")
    await _apply_events(shop)
    assert await _balance(shop, token) == 70
    status, rest = await _goodwill(shop, host_token, oid, None, "p3")
    assert (status, rest["amount_fen"]) == (201, 7000)
    assert await _order_status(shop, oid) == "refunded"
    await _wait(shop, oid, "processing")
    await _settle(shop)
    await _wait(shop, oid, "success", count=2)
    await _apply_events(shop)
    assert await _balance(shop, token) == 0
    assert await _ledger(shop, oid) == [
        ("purchase_reversal", -30, 0), ("purchase_restore", 30, 0),
        ("purchase_reversal", -30, 0), ("purchase_reversal", -70, 0),
    ]  # fmt: skip
    live = await shop.pool.fetchval(
        "SELECT sum(amount_fen) FROM refunds WHERE order_id = $1 AND status <> 'closed'", oid
    )
    assert live == 10_000
    assert sum(r.refund for r in _fake(shop).refunds.values() if r.status == "SUCCESS") == 10_000


async def test_closed_while_another_refund_is_live_gives_back_only_its_share(shop: Shop) -> None:
    """Two 30 % refunds reversed 60 points between them; the first closes: 30 come back (the
    proportion is recomputed), not the 60 its event happened to take."""
    order, token, host_token, _ = await _paid(shop)
    oid = order["id"]
    assert (await _goodwill(shop, host_token, oid, 3000, "a"))[0] == 201
    assert (await _goodwill(shop, host_token, oid, 3000, "b"))[0] == 201
    await _apply_events(shop)  # both rows exist: the first event takes 60, the second none
    assert await _balance(shop, token) == 40
    rows = await _wait(shop, oid, "processing", count=2)
    first = refunds.out_refund_no(rows[0]["id"])
    await _settle(shop, "CLOSED", out_refund_no=first)
    await _wait(shop, oid, "closed")
    await _apply_events(shop)
    assert await _balance(shop, token) == 70
    await _settle(shop)
    await _wait(shop, oid, "success")
    await _apply_events(shop)
    assert await _balance(shop, token) == 70


async def test_closed_by_query_and_racing_answers_apply_once(shop: Shop) -> None:
    """No notification: the worker's query finds CLOSED. Then the same answer again many
    times at once, a late SUCCESS and another query: one close, one order move, one restore."""
    fake = _fake(shop)
    fake.refund_notify = False
    order, token, host_token, _ = await _paid(shop)
    oid = order["id"]
    status, refund = await _goodwill(shop, host_token, oid, None, "q1")
    assert status == 201
    await _wait(shop, oid, "processing")
    await _settle(shop, "CLOSED")
    assert fake.refund_notices == []
    await _run_due(shop)  # the worker's query finds it closed
    await _wait(shop, oid, "closed")
    worker = shop.server.app[keys.REFUND_WORKER]
    answers = [{"status": "CLOSED"}] * 6 + [{"status": "SUCCESS"}] * 2
    moved = await asyncio.gather(
        *(worker.apply(refund["id"], a, order_id=oid) for a in answers), _run_due(shop)
    )
    assert not any(moved[:-1])
    rows = await _refunds(shop, oid)
    assert [r["status"] for r in rows] == ["closed"]
    assert await _order_status(shop, oid) == "paid"
    await _apply_events(shop)
    assert await _balance(shop, token) == 100
    assert await _ledger(shop, oid) == [
        ("purchase_reversal", -100, 0),
        ("purchase_restore", 100, 0),
    ]
    assert (await _notices(shop, oid)).count("refund_closed") == 1
    assert "refund_succeeded" not in await _notices(shop, oid)


async def test_success_racing_close_leaves_one_outcome(shop: Shop) -> None:
    """SUCCESS and CLOSED answers for one refund at once: whichever applies first wins and the
    order, notices and points match it."""
    order, token, host_token, _ = await _paid(shop)
    oid = order["id"]
    status, refund = await _goodwill(shop, host_token, oid, None, "r1")
    assert status == 201
    await _wait(shop, oid, "processing")
    worker = shop.server.app[keys.REFUND_WORKER]
    moved = await asyncio.gather(
        *(worker.apply(refund["id"], {"status": s}, order_id=oid)
          for s in ("SUCCESS", "CLOSED", "CLOSED", "SUCCESS"))
    )  # fmt: skip
    assert sum(moved) == 1
    final = (await _refunds(shop, oid))[0]["status"]
    await _apply_events(shop)
    kinds = await _notices(shop, oid)
    if final == "success":
        assert await _order_status(shop, oid) == "refunded"
        assert "refund_closed" not in kinds
        assert await _balance(shop, token) == 0
    else:
        assert final == "closed"
        assert await _order_status(shop, oid) == "paid"
        assert "refund_succeeded" not in kinds
        assert await _balance(shop, token) == 100


async def test_after_sales_refund_closed_goes_back_and_can_be_approved_again(shop: Shop) -> None:
    """An approved request of a shipped order whose refund WeChat closes: the order is shipped
    again, the buyer asks again, the host approves again and the new refund succeeds."""
    order, token, host_token, gid = await _paid(shop)
    oid = order["id"]
    status, _ = await http("POST", f"{shop.url}/api/host/orders/{oid}/ship",
                           json={"carrier": "SF", "tracking_no": "SF1"}, headers=bearer(host_token))  # fmt: skip
    assert status == 200

    async def ask_and_approve() -> None:
        status, req = await http("POST", f"{shop.url}/api/orders/{oid}/after-sales",
                                 json={"reason": "broken"}, headers=bearer(token))  # fmt: skip
        assert status == 201, req
        status, _ = await http("POST", f"{shop.url}/api/host/after-sales/{req['id']}/approve",  # type: ignore[index]
                               json={}, headers=bearer(host_token))  # fmt: skip
        assert status == 200

    await ask_and_approve()
    assert await _order_status(shop, oid) == "refunded"
    await _wait(shop, oid, "processing")
    await _settle(shop, "CLOSED")
    await _wait(shop, oid, "closed")
    assert await _order_status(shop, oid) == "shipped"
    assert await shop.stock(gid) == 4  # shipped: never restocked
    await _apply_events(shop)
    assert await _balance(shop, token) == 100
    await ask_and_approve()
    rows = await _wait(shop, oid, "processing")
    assert [r["source_key"] for r in rows] == [
        f"payment:{rows[0]['transaction_id']}",
        f"payment:{rows[0]['transaction_id']}:2",
    ]
    await _settle(shop)
    await _wait(shop, oid, "success")
    await _apply_events(shop)
    assert await _order_status(shop, oid) == "refunded"
    assert await _balance(shop, token) == 0


async def test_after_sales_of_unshipped_order_closed_takes_its_stock_again(shop: Shop) -> None:
    """Approving a paid (unshipped) order restocked it; its closed refund sends it back to paid
    holding its stock again, so it can be shipped."""
    order, token, host_token, gid = await _paid(shop)
    oid = order["id"]
    status, req = await http("POST", f"{shop.url}/api/orders/{oid}/after-sales",
                             json={"reason": "changed my mind"}, headers=bearer(token))  # fmt: skip
    assert status == 201
    status, _ = await http("POST", f"{shop.url}/api/host/after-sales/{req['id']}/approve",  # type: ignore[index]
                           json={}, headers=bearer(host_token))  # fmt: skip
    assert status == 200
    assert await shop.stock(gid) == 5
    await _wait(shop, oid, "processing")
    await _settle(shop, "CLOSED")
    await _wait(shop, oid, "closed")
    row = await shop.pool.fetchrow("SELECT status, stock_held FROM orders WHERE id = $1", oid)
    assert tuple(row) == ("paid", True)
    assert await shop.stock(gid) == 4
    status, shipped = await http("POST", f"{shop.url}/api/host/orders/{oid}/ship",
                                 json={"carrier": "SF", "tracking_no": "SF2"},
                                 headers=bearer(host_token))  # fmt: skip
    assert status == 200, shipped


async def test_refund_owed_by_the_system_is_reissued_with_a_new_number(shop: Shop) -> None:
    """A second payment's refund and a failed group's refund that WeChat closes are asked
    again with a new out_refund_no (the money is owed whatever the host does); the orders keep
    their state and no points move back and forth."""
    order, token, _, _ = await _paid(shop)
    oid = order["id"]
    await shop.pay(order)  # a second transaction of the same order
    group_order, group_token, _, _ = await _paid(shop)
    gid = group_order["id"]
    async with shop.pool.acquire() as conn:
        assert await refund_paid_order(conn, gid, "group_failed")
    await _wait(shop, oid, "processing")
    await _wait(shop, gid, "processing")
    await _apply_events(shop)
    assert await _balance(shop, group_token) == 0
    await _settle(shop, "CLOSED")
    for order_id, status in ((oid, "paid"), (gid, "refunded")):
        rows = await _wait(shop, order_id, "pending")
        closed, again = rows
        assert (closed["status"], again["reissue_of"]) == ("closed", closed["id"])
        assert (again["amount_fen"], again["transaction_id"]) == (
            closed["amount_fen"], closed["transaction_id"])  # fmt: skip
        assert again["next_attempt_at"] > again["created_at"]  # asked again after a backoff
        assert await _order_status(shop, order_id) == status
    await _run_due(shop)
    await _wait(shop, oid, "processing")
    await _wait(shop, gid, "processing")
    await _settle(shop)
    await _wait(shop, oid, "success")
    await _wait(shop, gid, "success")
    await _apply_events(shop)
    assert await _balance(shop, token) == 100  # the second payment's refunds take no points
    assert await _balance(shop, group_token) == 0
    assert await _ledger(shop, gid) == [("purchase_reversal", -100, 0)]  # no give-and-take
    notice = await shop.pool.fetchval(
        "SELECT payload FROM notifications WHERE kind = 'refund_closed' AND user_id = "
        "(SELECT user_id FROM orders WHERE id = $1)",
        gid,
    )
    payload = notice if isinstance(notice, dict) else orjson.loads(notice)
    assert payload["outcome"] == "reissued"


async def test_abnormal_refund_is_shown_to_the_host_until_settled(shop: Shop) -> None:
    """ABNORMAL: counted as refunded, shown to the host with the manual path; WeChat's later
    SUCCESS (after the merchant's manual handling) is applied."""
    order, _, host_token, _ = await _paid(shop)
    oid = order["id"]
    status, refund = await _goodwill(shop, host_token, oid, 3000, "ab")
    assert status == 201
    await _wait(shop, oid, "processing")
    await _settle(shop, "ABNORMAL")
    rows = await _wait(shop, oid, "abnormal")
    assert rows[0]["last_error"] == refunds.ABNORMAL_NOTE
    status, body = await _goodwill(shop, host_token, oid, 7001, "more")
    assert (status, body["error"]["code"]) == (409, "refund_exceeds_payment")  # still counted
    listed = await _host_orders(shop, host_token, "refund_issues")
    assert [o["id"] for o in listed] == [oid]
    assert listed[0]["refund_issues"][0]["status"] == "abnormal"
    status, mine = await http(
        "GET", f"{shop.url}/api/host/orders/{oid}/refunds", headers=bearer(host_token)
    )
    assert mine["items"][0]["last_error"] == refunds.ABNORMAL_NOTE  # type: ignore[index]
    await _settle(shop, "SUCCESS", out_refund_no=refund["out_refund_no"])
    await _wait(shop, oid, "success")
    assert await _host_orders(shop, host_token, "refund_issues") == []
    assert "refund_succeeded" in await _notices(shop, oid)


async def test_flash_sale_order_refund_closed_is_reissued_never_oversold(shop: Shop) -> None:
    """A host's full goodwill refund of a flash-sale order releases its unit to the sale; when
    WeChat closes that refund the order must not go back to paid (the unit may be sold again:
    one unit would be sold twice): the refund is re-issued instead, and the sale's one unit is
    sold exactly once more."""
    host_id, host_token = await shop.host()
    gid = await shop.goods(host_id, stock=100, price_fen=9900)
    status, sale = await http(
        "POST", shop.url + "/api/host/flash-sales",
        json={"goods_id": gid, "sale_price_fen": 990, "stock": 1, "per_user_limit": 1,
              "starts_at": _iso(-5), "ends_at": _iso(600)},
        headers=bearer(host_token),
    )  # fmt: skip
    assert status == 201, sale

    async def buy(token: str, key: str) -> tuple[int, Any]:
        return await http(
            "POST", f"{shop.url}/api/flash-sales/{sale['id']}/buy",
            headers={**bearer(token), "Idempotency-Key": key},
        )  # fmt: skip

    first_buyer = await shop.login()
    status, order = await buy(first_buyer, "a")
    assert status == 201, order
    oid = order["id"]
    _, started = await http("POST", f"{shop.url}/api/orders/{oid}/pay", headers=bearer(first_buyer))
    assert isinstance(started, dict)
    status, sent = await http(
        "POST", shop.fake_url + "/dev/pay", json={"payment": started["payment"]}
    )
    assert status == 200, sent
    await _apply_events(shop)
    status, first = await _goodwill(shop, host_token, oid, None, "flash-1")
    assert status == 201, first
    await _wait(shop, oid, "processing")
    await _apply_events(shop)  # the refund's event releases the unit
    stock = shop.server.app[keys.FLASH_STOCK]
    assert await stock.stock_left(sale["id"]) == 1
    assert await _settle(shop, "CLOSED") == [first["out_refund_no"]]
    rows = await _wait(shop, oid, "closed")
    await _apply_events(shop)
    assert await _order_status(shop, oid) == "refunded"  # not back to paid
    reissued = [r for r in await _refunds(shop, oid) if r["reissue_of"] == first["id"]]
    assert len(reissued) == 1, rows
    assert reissued[0]["amount_fen"] == first["amount_fen"]
    # The released unit sells once more; the sale's one unit is held by one paid order only.
    status, other = await buy(await shop.login(), "b")
    assert status == 201, other
    held = await shop.pool.fetchval(
        "SELECT count(*) FROM flash_sale_orders WHERE sale_id = $1 AND holding", sale["id"]
    )
    assert held == 1
    # The re-issued refund pays the first buyer back.
    await _run_due(shop)
    await _wait(shop, oid, "processing")
    assert await _settle(shop) == [refunds.out_refund_no(reissued[0]["id"])]
    await _wait(shop, oid, "success")
