"""The console during a Redis outage, in a real Chromium: the live panel says its figures are
paused (it showed "connected" over frozen figures), a push says the server cannot reach its
backend (it said "busy"), and both recover once Valkey is back."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from livecommerce.config import Settings
from livecommerce.db import create_pool
from tests.console.conftest import DESKTOP, Console, browser  # noqa: F401 (the fixture)
from tests.console.test_browser import sign_in
from tests.outages.conftest import Faults
from tests.realtime.conftest import World
from tests.support import AppServer


@pytest.mark.timeout(120)
async def test_console_says_so_during_a_redis_outage_and_recovers(
    browser: Any,  # noqa: F811
    fault_server: AppServer,
    fault_world: World,
    fault_settings: Settings,
    faulty: Faults,
) -> None:
    pool: asyncpg.Pool = await create_pool(fault_settings.database)
    try:
        console = Console(fault_server, pool)
        host = await console.account("Outage host")
        await pool.execute(
            "UPDATE live_rooms SET host_id = $1 WHERE id = $2", host.id, fault_world.room_id
        )
        await pool.execute(
            "UPDATE goods SET host_id = $1 WHERE id = ANY($2::bigint[])",
            host.id,
            fault_world.goods_ids,
        )
        page = await sign_in(browser, console, host, DESKTOP)
        await page.goto(f"{console.url}/console?room={fault_world.room_id}")
        await page.locator("#conn", has_text="connected").wait_for()
        await page.locator("#shelf li button", has_text="Push now").first.wait_for()

        await faulty.kill_valkey()
        await page.locator("#conn", has_text="live figures paused").wait_for(timeout=15_000)
        await page.locator("#shelf li button", has_text="Push now").first.click()
        await page.locator("#notice", has_text="cannot reach").wait_for(timeout=30_000)

        await faulty.start_valkey()
        await page.locator("#conn.ok", has_text="connected").wait_for(timeout=30_000)
    finally:
        await pool.close()
