"""What a newcomer trying the console and the audience page side by side ran into.

* The audience page's sign-in field had ``pattern="[A-Za-z0-9_-]+"``: browsers compile a
  ``pattern`` with the ``v`` flag, where a bare ``-`` at the end of a class is a syntax error, so
  Chromium logged an error on every load and never checked the name.
* On a phone (390 px) the console's orders table with a ship form made the whole page scroll
  sideways.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.console.conftest import PHONE, Console
from tests.console.test_browser import audience, goods_for, live_room, push, sign_in, until
from tests.support import http


async def test_audience_page_logs_no_error_and_console_fits_a_phone(
    browser: Any, console: Console
) -> None:
    host = await console.account("Newcomer host")
    goods = await goods_for(console, host, 1)
    room = await live_room(console, host, goods)

    ctx = await browser.new_context(viewport=PHONE, is_mobile=True)
    viewer = await ctx.new_page()
    viewer.set_default_timeout(10_000)
    errors: list[str] = []
    viewer.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    viewer.on("pageerror", lambda e: errors.append(str(e)))
    viewer.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
    await viewer.goto(f"{console.url}/live/{room}")
    await viewer.get_by_label("Your name").fill("newcomer")
    await viewer.get_by_role("button", name="Enter").click()
    await until(viewer, "window.__live && window.__live.client && window.__live.client._welcomed")
    # The name field's pattern is enforced (it was silently ignored before).
    assert await viewer.evaluate("document.querySelector('#login-name').validity.valid")

    await push(console, host, room, goods[0])
    await viewer.get_by_role("button", name="Buy now").click()
    await viewer.get_by_role("button", name="Place order").click()
    await viewer.locator("#order-status", has_text="awaiting payment").wait_for()
    await viewer.get_by_role("button", name="Pay", exact=True).click()
    await viewer.locator("#order-status", has_text="is paid").wait_for()
    assert errors == []

    page = await sign_in(browser, console, host, viewport=PHONE)
    await page.goto(f"{console.url}/console?room={room}")
    await (
        page.locator("#orders tr[data-status='paid']").get_by_role("button", name="Ship").wait_for()
    )
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the console scrolls sideways on a phone: {width} px"
    # The ship form is still reachable (the table scrolls inside its card).
    await page.get_by_role("button", name="Ship").scroll_into_view_if_needed()
    assert await page.get_by_role("button", name="Ship").is_visible()


async def test_offset_before_now_says_it_counts_from_the_start(
    browser: Any, console: Console
) -> None:
    """``+00:01`` on a room live for a while is refused; the console says why (a newcomer reads
    ``+mm:ss`` as "from now")."""
    host = await console.account("Offset host")
    goods = await goods_for(console, host, 1)
    room = await live_room(console, host, goods)
    await console.pool.execute(
        "UPDATE live_rooms SET started_at = now() - interval '1 minute' WHERE id = $1", room
    )
    page = await sign_in(browser, console, host)
    await page.goto(f"{console.url}/console?room={room}")
    item = page.locator(f"#shelf li[data-goods='{goods[0]}']")
    await item.get_by_role("textbox").fill("+00:01")
    await item.get_by_role("button", name="Schedule").click()
    await page.locator("#notice", has_text="counts from when the stream started").wait_for()


async def test_offset_on_a_room_without_a_start_says_what_to_do(
    browser: Any, console: Console
) -> None:
    """``+05:00`` on a room neither started nor planned: the console said "Please check the
    form: offset_seconds: the room has no start to offset from" (an API field name); it now
    says what to do."""
    host = await console.account("Prep host")
    goods = await goods_for(console, host, 1)
    auth = {"Authorization": f"Bearer {host.token}"}
    _, made = await http("POST", console.url + "/api/rooms", json={"title": "Prep"}, headers=auth)
    room = int(made["id"])  # type: ignore[index]
    await http("POST", f"{console.url}/api/rooms/{room}/goods", json={"goods_ids": goods},
               headers=auth)  # fmt: skip
    page = await sign_in(browser, console, host)
    await page.goto(f"{console.url}/console?room={room}")
    item = page.locator(f"#shelf li[data-goods='{goods[0]}']")
    await item.get_by_role("textbox").fill("+05:00")
    await item.get_by_role("button", name="Schedule").click()
    notice = page.locator("#notice", has_text="no start time yet")
    await notice.wait_for()
    assert "offset_seconds" not in await notice.inner_text()


LOCAL_INPUT = """(ms) => {
  const d = new Date(Date.now() + ms);
  d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
  return d.toISOString().slice(0, 16);
}"""  # a datetime-local value ``ms`` from now, in the browser's zone


async def test_planned_start_too_far_back_says_so(browser: Any, console: Console) -> None:
    """A planned start two days back is refused (400 on ``planned_start_at``); the console says
    how far back it may be, not the API's words, and the room is made once it is in range."""
    host = await console.account("Planner host")
    page = await sign_in(browser, console, host)
    await page.get_by_text("New room").click()
    await page.get_by_label("Title").fill("Planned show")
    planned = page.get_by_label("Planned start")
    await planned.fill(await page.evaluate(LOCAL_INPUT, -2 * 86_400_000))
    await page.get_by_role("button", name="Create room").click()
    notice = page.locator("#notice", has_text="at most a day in the past")
    await notice.wait_for()
    assert "planned_start_at" not in await notice.inner_text()
    assert (
        await console.pool.fetchval("SELECT count(*) FROM live_rooms WHERE host_id = $1", host.id)
        == 0
    )
    await planned.fill(await page.evaluate(LOCAL_INPUT, 3_600_000))
    await page.get_by_role("button", name="Create room").click()
    await page.get_by_role("heading", name="Planned show").wait_for()


ADDRESS = {"userName": "张三", "telNumber": "13800138000", "provinceName": "广东省",
           "cityName": "广州市", "detailInfo": "新港中路397号"}  # fmt: skip


async def paid_order(console: Console, token: str, goods: int, key: str) -> int:
    """An order placed and paid over HTTP (the fake WeChat Pay), as a buyer would."""
    auth = {"Authorization": f"Bearer {token}"}
    status, order = await http(
        "POST", console.url + "/api/orders", headers={**auth, "Idempotency-Key": key},
        json={"goods_id": goods, "quantity": 1, "address": ADDRESS},
    )  # fmt: skip
    assert status == 201, order
    oid = int(order["id"])  # type: ignore[index]
    status, out = await http("POST", f"{console.url}/api/dev/orders/{oid}/pay", headers=auth)
    assert status in (200, 201, 202), out
    for _ in range(200):
        _, got = await http("GET", f"{console.url}/api/orders/{oid}", headers=auth)
        if got["status"] == "paid":  # type: ignore[index]
            return oid
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {oid} not paid: {got}")


async def test_host_refunds_and_decides_after_sales_in_the_console(
    browser: Any, console: Console
) -> None:
    """The orders table offers what the API does: a goodwill refund (two clicks, never one) and
    Approve / Reject of a buyer's after-sales request (before: no way from the console)."""
    host = await console.account("Refund host")
    goods = await goods_for(console, host, 1)
    room = await live_room(console, host, goods)
    _, login = await http("POST", console.url + "/api/auth/wechat/login", json={"code": "rb.1"})
    token = str(login["token"])  # type: ignore[index]
    await push(console, host, room, goods[0])
    goodwill = await paid_order(console, token, goods[0], "rf-1")
    asked = await paid_order(console, token, goods[0], "rf-2")
    status, req = await http(
        "POST", f"{console.url}/api/orders/{asked}/after-sales",
        headers={"Authorization": f"Bearer {token}"},
        json={"reason": "arrived broken", "return_goods": True},
    )  # fmt: skip
    assert status == 201, req

    page = await sign_in(browser, console, host)
    await page.goto(f"{console.url}/console?room={room}")
    row = page.locator(f"#orders tr[data-order='{goodwill}']")
    await row.get_by_role("button", name=f"Refund order {goodwill}").click()
    await row.get_by_label(f"Refund amount for order {goodwill}").fill("5")
    await row.get_by_role("button", name="Confirm refund").click()
    await page.locator("#notice", has_text=f"Order #{goodwill}: refund started.").wait_for()
    refunds = await console.pool.fetch(
        "SELECT amount_fen FROM refunds WHERE order_id = $1", goodwill
    )
    assert [r["amount_fen"] for r in refunds] == [500]

    other = page.locator(f"#orders tr[data-order='{asked}']")
    await other.locator("text=Buyer asks: “arrived broken” (returns the goods)").wait_for()
    await other.get_by_role("button", name=f"Approve the refund of order {asked}").click()
    await page.locator("#notice", has_text=f"Order #{asked}: refund approved.").wait_for()
    decided = await console.pool.fetchval(
        "SELECT status FROM after_sales WHERE order_id = $1", asked
    )
    assert decided == "approved"
    await other.locator("text=Buyer asks").wait_for(state="detached")


async def test_buyer_sees_the_refund_on_the_audience_page(browser: Any, console: Console) -> None:
    """A refund reaches the buyer's page in words (the notices came, the page ignored them)."""
    host = await console.account("Refund notice host")
    goods = await goods_for(console, host, 1)
    room = await live_room(console, host, goods)
    viewer = await audience(browser, console, room, "refundee")
    await push(console, host, room, goods[0])
    await viewer.get_by_role("button", name="Buy now").click()
    await viewer.get_by_role("button", name="Place order").click()
    await viewer.locator("#order-status", has_text="awaiting payment").wait_for()
    await viewer.get_by_role("button", name="Pay", exact=True).click()
    await viewer.locator("#order-status", has_text="is paid").wait_for()
    order = (await viewer.evaluate("window.__live.order"))["id"]
    status, out = await http(
        "POST", f"{console.url}/api/host/orders/{order}/refunds", json={"amount_fen": 300},
        headers={"Authorization": f"Bearer {host.token}", "Idempotency-Key": "notice-1"},
    )  # fmt: skip
    assert status == 201, out
    await viewer.locator("#toast", has_text=f"Refund of ¥3.00 for order #{order}").wait_for(
        timeout=15_000
    )


async def test_buyer_requests_a_refund_on_the_audience_page(browser: Any, console: Console) -> None:
    """The buyer of a paid order asks for a refund with a reason on the audience page (before: no
    way to ask); the host approves it over REST and the page says so in words."""
    host = await console.account("After-sales host")
    goods = await goods_for(console, host, 1)
    room = await live_room(console, host, goods)
    viewer = await audience(browser, console, room, "asker")
    await push(console, host, room, goods[0])
    await viewer.get_by_role("button", name="Buy now").click()
    form = viewer.get_by_role("form", name="Request a refund")
    await viewer.get_by_role("button", name="Place order").click()
    await viewer.locator("#order-status", has_text="awaiting payment").wait_for()
    assert not await form.is_visible()  # not before the order is paid
    await viewer.get_by_role("button", name="Pay", exact=True).click()
    await viewer.locator("#order-status", has_text="is paid").wait_for()
    order = (await viewer.evaluate("window.__live.order"))["id"]

    reason = viewer.get_by_label("Why do you want a refund?")
    assert await reason.evaluate("n => n.validity.valueMissing")  # the browser asks for one
    await reason.fill("   ")  # blanks pass `required`; the page asks in words
    await form.get_by_role("button", name="Request a refund").click()
    await viewer.locator("#aftersale-error", has_text="say why").wait_for()
    await viewer.get_by_label("Why do you want a refund?").fill("wrong size")
    await viewer.get_by_label("I will send the goods back").check()
    await form.get_by_role("button", name="Request a refund").click()
    await viewer.locator(
        "#aftersale-status", has_text=f"Refund requested for order #{order}"
    ).wait_for()
    await form.wait_for(state="hidden")
    row = await console.pool.fetchrow(
        "SELECT id, reason, return_goods, status FROM after_sales WHERE order_id = $1", order
    )
    assert (row["reason"], row["return_goods"], row["status"]) == ("wrong size", True, "requested")

    status, out = await http(
        "POST", f"{console.url}/api/host/after-sales/{row['id']}/approve", json={"note": "sorry"},
        headers={"Authorization": f"Bearer {host.token}"},
    )  # fmt: skip
    assert status == 200, out
    await viewer.locator(
        "#aftersale-status", has_text=re.compile(f"Refund approved|Refunded: .* order #{order}")
    ).wait_for(timeout=15_000)
    assert not await form.is_visible()

    # A second order: asked for elsewhere (another phone) first, so the page is told it is
    # already asked for; the host declines, and the buyer may ask again.
    await viewer.get_by_role("button", name="Back to the live").click()
    await push(console, host, room, goods[0])
    await viewer.get_by_role("button", name="Buy now").click()
    await viewer.get_by_role("button", name="Place order").click()
    await viewer.get_by_role("button", name="Pay", exact=True).click()
    await viewer.locator("#order-status", has_text="is paid").wait_for()
    second = (await viewer.evaluate("window.__live.order"))["id"]
    buyer = {"Authorization": "Bearer " + await viewer.evaluate("window.__live.token")}
    url = f"{console.url}/api/orders/{second}/after-sales"
    status, req = await http("POST", url, json={"reason": "changed my mind"}, headers=buyer)
    assert status == 201, req
    await viewer.get_by_label("Why do you want a refund?").fill("changed my mind")
    await form.get_by_role("button", name="Request a refund").click()
    await viewer.locator("#aftersale-status", has_text="already asked").wait_for()
    status, out = await http(
        "POST", f"{console.url}/api/host/after-sales/{req['id']}/reject",  # type: ignore[index]
        json={"note": "worn already"}, headers={"Authorization": f"Bearer {host.token}"},
    )  # fmt: skip
    assert status == 200, out
    await viewer.locator(
        "#aftersale-status", has_text=f"Refund declined for order #{second}: worn already"
    ).wait_for(timeout=15_000)
    await form.wait_for()  # may ask again

    # Meanwhile the host refunds the order in full: asking again is refused, in words.
    status, out = await http(
        "POST", f"{console.url}/api/host/orders/{second}/refunds", json={},
        headers={"Authorization": f"Bearer {host.token}", "Idempotency-Key": "as-full"},
    )  # fmt: skip
    assert status == 201, out
    await form.get_by_role("button", name="Request a refund").click()
    await viewer.get_by_role("alert").filter(has_text="can no longer be refunded").wait_for()
    await viewer.locator("#aftersale-status", has_text=f"Order #{second} is refunded.").wait_for()
    await form.wait_for(state="hidden")


async def test_push_into_an_ended_room_says_it_has_ended(browser: Any, console: Console) -> None:
    """The room ended elsewhere (another tab, the CLI): Push now says it has ended, not "start
    it first" (an ended room cannot start again)."""
    host = await console.account("Ended host")
    goods = await goods_for(console, host, 1)
    room = await live_room(console, host, goods)
    page = await sign_in(browser, console, host)
    await page.goto(f"{console.url}/console?room={room}")
    item = page.locator(f"#shelf li[data-goods='{goods[0]}']")
    await item.get_by_role("button", name="Push now").wait_for()
    await console.pool.execute("UPDATE live_rooms SET state = 'ended' WHERE id = $1", room)
    await item.get_by_role("button", name="Push now").click()
    await page.locator("#notice", has_text="The room has ended.").wait_for()
    assert "Start it first" not in await page.locator("#notice").inner_text()
