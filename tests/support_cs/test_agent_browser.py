"""The agent workspace in a real headless Chromium (Playwright, Debian's chromium): an agent
signs in, sees the queue live, claims, reads the buyer's goods, gets the buyer's message live,
replies (the fake WeChat receives it), hits WeChat's reply limit (shown plainly), uses a canned
reply, survives a dropped socket (reconnects by itself, keeps the conversation), transfers one
conversation and closes another. Skipped with one line when chromium or playwright is absent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support import ROOT
from tests.support_cs.agentkit import HostShop, queued, state
from tests.support_cs.conftest import Desk

Shops = Callable[[], Awaitable[HostShop]]
SHOT = ROOT / "docs" / "screenshots" / "agent-desktop.png"


async def until(page: Any, expression: str, within: float = 10.0) -> None:
    """Poll ``expression`` in the page (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + within
    while not await page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        await asyncio.sleep(0.05)


async def test_agent_workspace_in_a_browser(browser: Any, desk: Desk, shops: Shops) -> None:
    s = await shops()
    ann = await s.agent("Ann", capacity=1)
    bob = await s.agent("Bob", capacity=3)
    c1 = await queued(desk, "amy", f"goods:{s.goods_id}")  # nobody online: both wait

    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await ctx.new_page()
    page.set_default_timeout(10_000)
    await page.goto(desk.shop.url + "/agent")
    await page.get_by_label("Login").fill(ann.login)
    await page.get_by_label("Password").fill("wrong-password")
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#notice", has_text="Wrong login or password").wait_for()
    await page.get_by_label("Password").fill(ann.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#link", has_text="online").wait_for()
    # Signing in put Ann online: the waiting conversation was assigned to her at once.
    await page.locator(f"#mine li[data-conv='{c1}']").wait_for()
    assert await state(desk, c1) == ("agent", ann.id)

    # A new hand-off while Ann is at capacity shows in the queue, live; given a second seat
    # by her host, she claims it.
    c2 = await queued(desk, "ben", f"goods:{s.goods_id}")
    await page.locator(f"#queue li[data-conv='{c2}']").wait_for()
    status, _ = await s.call("PATCH", f"/api/host/support/agents/{ann.id}", {"capacity": 2})
    assert status == 200
    await page.locator(f"#queue li[data-conv='{c2}']").get_by_role("button", name="Claim").click()
    await page.locator(f"#mine li[data-conv='{c2}']").wait_for()
    await page.locator("#goods", has_text="Silk scarf").wait_for()  # what Ben came from

    # Ben writes: it appears live; Ann answers; the fake WeChat gets it.
    await desk.push(user="ben", type="text", content="Is the scarf pure silk?")
    await page.locator("#messages", has_text="Is the scarf pure silk?").wait_for()
    await page.get_by_label("Reply to the buyer").fill("Yes, 100% mulberry silk.")
    await page.get_by_role("button", name="Send").click()
    await page.locator("#messages", has_text="Yes, 100% mulberry silk.").wait_for()
    await desk.settled()
    sent = [m["text"]["content"] for m in await desk.sent(desk.openid("ben"))]
    assert sent[-1] == "Yes, 100% mulberry silk."

    # WeChat's limit reached: the page says so plainly, nothing is sent.
    await desk.pool.execute(
        "UPDATE support_windows SET window_sent = window_limit WHERE openid = $1",
        desk.openid("ben"),
    )
    await page.get_by_label("Reply to the buyer").fill("One more thing…")
    await page.get_by_role("button", name="Send").click()
    await page.locator("#reply-error", has_text="WeChat allows 5 replies").wait_for()
    await desk.pool.execute(
        "UPDATE support_windows SET window_sent = 0 WHERE openid = $1", desk.openid("ben")
    )

    # A canned reply: added in the page, inserted into the reply box.
    await page.get_by_text("Canned replies").click()
    await page.get_by_label("Title").fill("Shipping")
    await page.get_by_label("Text").fill("We ship within 48 hours.")
    await page.get_by_role("button", name="Add canned reply").click()
    await page.locator("#canned-list", has_text="Shipping").wait_for()
    await page.get_by_label("Reply to the buyer").fill("")
    await page.get_by_label("Canned reply").select_option(label="Shipping")
    await page.get_by_role("button", name="Insert").click()
    assert await page.get_by_label("Reply to the buyer").input_value() == "We ship within 48 hours."
    await page.screenshot(path=str(SHOT))

    # The socket drops: the page reconnects on its own, Ann never went offline, nothing lost.
    hellos = await page.evaluate("window.__agent.hellos")
    await page.evaluate("window.__agent.ws.close()")
    await until(page, f"window.__agent.hellos > {hellos} && window.__agent.connected")
    await page.locator("#link", has_text="online").wait_for()
    assert await state(desk, c1) == ("agent", ann.id)
    assert await state(desk, c2) == ("agent", ann.id)
    await page.locator(f"#mine li[data-conv='{c1}']").wait_for()

    # Bob comes online: Ann transfers Amy's conversation to him and closes Ben's.
    await bob.online()
    await page.locator(f"#transfer-to option[value='{bob.id}']:not([disabled])").wait_for(
        state="attached"
    )
    await page.locator(f"#mine li[data-conv='{c1}']").get_by_role("button").click()
    await page.locator("#chat-state", has_text="with you").wait_for()
    await page.get_by_label("Transfer to").select_option(str(bob.id))
    await page.get_by_role("button", name="Transfer").click()
    await page.locator(f"#mine li[data-conv='{c1}']").wait_for(state="detached")
    assert await state(desk, c1) == ("agent", bob.id)
    await page.locator(f"#mine li[data-conv='{c2}']").get_by_role("button").click()
    await page.locator("#chat-state", has_text="with you").wait_for()
    await page.get_by_role("button", name="Close conversation").click()
    await page.locator(f"#mine li[data-conv='{c2}']").wait_for(state="detached")
    assert (await state(desk, c2))[0] == "closed"
    await ctx.close()


async def test_agent_page_signs_out_when_the_host_sets_a_new_password(
    browser: Any, desk: Desk, shops: Shops
) -> None:
    """The page's socket closes 1008 ``session_revoked``: the page shows the sign-in form (no
    reconnecting) and says why; the new password signs in from the page and the desk works."""
    s = await shops()
    ann = await s.agent("Ann")
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await ctx.new_page()
    page.set_default_timeout(10_000)
    await page.goto(desk.shop.url + "/agent")
    await page.get_by_label("Login").fill(ann.login)
    await page.get_by_label("Password").fill(ann.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#link", has_text="online").wait_for()
    hellos = await page.evaluate("window.__agent.hellos")

    status, _ = await s.call(
        "PATCH", f"/api/host/support/agents/{ann.id}", {"password": "ann-new-password"}
    )
    assert status == 200
    await page.locator("#notice", has_text="your password was changed").wait_for()
    await page.locator("#signin").wait_for()
    await page.locator("#desk").wait_for(state="hidden")
    assert await page.evaluate("window.__agent.agent") is None
    assert await page.evaluate("window.__agent.ws") is None
    await asyncio.sleep(1.5)  # no reconnect attempts (the backoff would have fired by now)
    assert await page.evaluate("window.__agent.hellos") == hellos

    await page.get_by_label("Password").fill(ann.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#notice", has_text="Wrong login or password").wait_for()
    await page.get_by_label("Password").fill("ann-new-password")
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#link", has_text="online").wait_for()
    conv = await queued(desk, "dana", f"goods:{s.goods_id}")
    await page.locator(f"#mine li[data-conv='{conv}']").wait_for()
    assert await state(desk, conv) == ("agent", ann.id)
    await ctx.close()
