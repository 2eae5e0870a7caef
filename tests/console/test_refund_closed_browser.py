"""A refund WeChat Pay closes, in the browser: the buyer's page says it did not go through, the
console's orders table shows it (with why) and the host refunds the order again from there."""

from __future__ import annotations

import asyncio
from typing import Any

from livecommerce import keys
from tests.console.conftest import Console
from tests.console.test_browser import audience, goods_for, live_room, push, sign_in
from tests.support import http


async def _refund_status(console: Console, order: int, status: str) -> None:
    for _ in range(300):
        found = await console.pool.fetchval(
            "SELECT count(*) FROM refunds WHERE order_id = $1 AND status = $2", order, status
        )
        if found:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {status} refund for order {order}")


async def test_closed_refund_is_shown_and_refunded_again(browser: Any, console: Console) -> None:
    host = await console.account("Closed refund host")
    goods = await goods_for(console, host, 1)
    room = await live_room(console, host, goods)
    viewer = await audience(browser, console, room, "closedbuyer")
    await push(console, host, room, goods[0])
    await viewer.get_by_role("button", name="Buy now").click()
    await viewer.get_by_role("button", name="Place order").click()
    await viewer.locator("#order-status", has_text="awaiting payment").wait_for()
    await viewer.get_by_role("button", name="Pay", exact=True).click()
    await viewer.locator("#order-status", has_text="is paid").wait_for()
    order = (await viewer.evaluate("window.__live.order"))["id"]
    status, out = await http(
        "POST", f"{console.url}/api/host/orders/{order}/refunds", json={"reason": "late"},
        headers={"Authorization": f"Bearer {host.token}", "Idempotency-Key": "closed-1"},
    )  # fmt: skip
    assert status == 201, out
    await _refund_status(console, order, "processing")
    fake_url = console.server.app[keys.FAKE_WECHAT_URL]
    status, _ = await http("POST", fake_url + "/dev/refunds/settle", json={"status": "CLOSED"})
    assert status == 200
    await viewer.locator("#toast", has_text="did not go through").wait_for(timeout=15_000)

    page = await sign_in(browser, console, host)
    await page.goto(f"{console.url}/console?room={room}")
    row = page.locator(f"#orders tr[data-order='{order}'][data-status='paid']")
    await row.locator(".refund-issue", has_text="closed by WeChat Pay").wait_for()
    assert "NOT paid back" in await row.locator(".refund-issue").inner_text()
    await page.locator("#orders-status").select_option("refund_issues")
    await page.locator(f"#orders tr[data-order='{order}']").wait_for()
    await row.get_by_role("button", name=f"Refund order {order}").click()
    await row.get_by_role("button", name="Confirm refund").click()
    await page.locator("#notice", has_text=f"Order #{order}: refund started.").wait_for()
    await page.locator("#orders-status").select_option("")
    again = page.locator(f"#orders tr[data-order='{order}'][data-status='refunded']")
    await again.locator("text=asks for it again").wait_for()
