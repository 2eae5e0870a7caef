"""The host console's customer-service section in a real headless Chromium: the host creates
an agent, edits its capacity and password (the agent signs in with the new one), adds a
canned reply and a FAQ answer, and deletes the agent (confirmed; gone from the list and the
database). Skipped with one line when chromium or playwright is absent."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Console
from tests.console.test_browser import sign_in
from tests.support import ROOT, http

SHOT = ROOT / "docs" / "screenshots" / "console-agents.png"


async def test_host_manages_agents_in_the_console(browser: Any, console: Console) -> None:
    host = await console.account("Agents host")
    page = await sign_in(browser, console, host)
    await page.get_by_role("heading", name="Customer service").wait_for()

    await page.get_by_text("New agent").click()
    await page.locator("#agent-name").fill("Mia")
    await page.locator("#agent-login").fill("mia-console")
    await page.locator("#agent-password").fill("mia-password-1")
    await page.locator("#agent-capacity").fill("3")
    await page.get_by_role("button", name="Create agent").click()
    row = page.locator("#agents tbody tr", has_text="mia-console")
    await row.wait_for()
    agent = await console.pool.fetchrow(
        "SELECT id, host_id, capacity FROM support_agents WHERE login = 'mia-console'"
    )
    assert (agent["host_id"], agent["capacity"]) == (host.id, 3)

    # Edit: a new capacity and password; the agent signs in with the new password.
    await page.get_by_role("button", name="Edit Mia").click()
    await page.locator("#agent-capacity").fill("4")
    await page.locator("#agent-password").fill("mia-password-2")
    await page.get_by_role("button", name="Save changes").click()
    await page.locator("#agents tbody tr td:nth-child(3)", has_text="4").wait_for()
    status, _ = await http("POST", console.url + "/api/agent/session",
                           json={"login": "mia-console", "password": "mia-password-2"})  # fmt: skip
    assert status == 201

    # A canned reply and a FAQ answer for the bot.
    await page.get_by_text("New canned reply").click()
    await page.locator("#canned-title").fill("Shipping")
    await page.locator("#canned-body").fill("We ship within 48 hours.")
    await page.get_by_role("button", name="Add reply").click()
    await page.locator("#canned-list", has_text="We ship within 48 hours.").wait_for()
    await page.get_by_text("New FAQ answer").click()
    await page.locator("#faq-keywords").fill("发货, shipping")
    await page.locator("#faq-answer").fill("48 小时内发货。")
    await page.get_by_role("button", name="Add answer").click()
    await page.locator("#faq-list", has_text="发货, shipping").wait_for()
    await page.locator("#support").screenshot(path=str(SHOT))

    # Delete (after confirming): gone from the list and the database.
    page.once("dialog", lambda d: d.accept())
    await page.get_by_role("button", name="Delete Mia").click()
    await row.wait_for(state="detached")
    assert (
        await console.pool.fetchval(
            "SELECT count(*) FROM support_agents WHERE id = $1", agent["id"]
        )
        == 0
    )
    await page.context.close()
