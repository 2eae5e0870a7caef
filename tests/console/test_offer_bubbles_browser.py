"""Flash sales and group offers pushed from the console's shelf, bought and joined on the
audience page (phone viewport) through the development payment, in a real Chromium."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Console
from tests.console.test_browser import audience, goods_for, live_room, sign_in


async def _create_offer(page: Any, kind: str, goods: int, price: str, count: str) -> None:
    await page.get_by_label("Kind").select_option(kind)
    await page.get_by_label("Goods (from the shelf)").select_option(str(goods))
    await page.get_by_label("Price (yuan)").fill(price)
    await page.get_by_label("Units on sale (flash) / members per group (group)").fill(count)
    await page.get_by_role("button", name="Create offer").click()


async def _buy(viewer: Any, action: str) -> None:
    await viewer.locator("#buy", has_text=action).click()
    await viewer.locator(
        "#place", has_text=action if action != "Buy now" else "Place order"
    ).click()
    await viewer.locator("#order-status", has_text="awaiting payment").wait_for()
    await viewer.get_by_role("button", name="Pay", exact=True).click()
    await viewer.locator("#order-status", has_text="is paid").wait_for()
    await viewer.get_by_role("button", name="Back to the live").click()


async def test_group_offer_and_flash_sale_bubbles(browser: Any, console: Console) -> None:
    """A group of 2 pushed from the shelf: one viewer starts it (the bubble then says 1
    joined, 1 to go, in the console too), another joins and fills it. A flash sale pushed
    next shows its live stock, which drops when a viewer buys."""
    host = await console.account("Offer host")
    goods = await goods_for(console, host, 1)
    room = await live_room(console, host, goods)
    page = await sign_in(browser, console, host)
    await page.goto(f"{console.url}/console?room={room}")
    await page.locator("#conn", has_text="connected").wait_for()
    await page.get_by_text("New flash sale or group offer").click()
    await _create_offer(page, "group", goods[0], "9.90", "2")
    await page.get_by_role("button", name="Push group offer").click()

    first = await audience(browser, console, room, "alice")
    await first.locator("#bubble-stock", has_text="groups of 2: start one").wait_for()
    await _buy(first, "Start a group")
    await first.locator("#bubble-stock", has_text="1 joined, 1 to go").wait_for()
    assert await first.locator("#buy", has_text="You are in this group").is_disabled()
    await page.locator("#bubble-now", has_text="1 joined, 1 to go").wait_for()

    second = await audience(browser, console, room, "bob")  # the bubble from welcome, freshened
    await second.locator("#bubble-stock", has_text="1 joined, 1 to go").wait_for()
    await _buy(second, "Join group")
    await second.locator("#toast", has_text="is complete").wait_for()
    await first.locator("#bubble-stock", has_text="start one").wait_for()

    await _create_offer(page, "flash", goods[0], "5.00", "3")
    await page.get_by_role("button", name="Push flash sale").click()
    await first.locator("#bubble-stock", has_text="3 left").wait_for()
    await _buy(first, "Buy now")
    await second.locator("#bubble-stock", has_text="2 left").wait_for()
    await page.locator("#bubble-now", has_text="2 left").wait_for()
