"""When the reply window has closed, one subscribe message tells the buyer an answer waits."""

from __future__ import annotations

import dataclasses

import asyncpg

from livecommerce import keys
from livecommerce.config import Settings
from livecommerce.support import sender
from tests.commerce.conftest import Shop
from tests.support import http
from tests.support_cs.conftest import Desk


async def test_closed_window_sends_one_waiting_message(
    make_server, pool: asyncpg.Pool, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    """Two replies after the window closed: both skipped, one subscribe message in all."""
    support = dataclasses.replace(settings.support, waiting_template_id="waiting-tpl")
    server = await make_server(dataclasses.replace(settings, support=support))
    desk = Desk(Shop(server, pool))
    openid = desk.openid("late")
    await desk.push(user="late", type="text", content="zzz")
    await desk.settled()
    await pool.execute("UPDATE support_windows SET window_until = now() - interval '1 s'")
    for i in range(2):
        await pool.execute(
            "INSERT INTO support_replies (openid, kind, body) VALUES ($1, 'agent', $2)",
            openid, {"msgtype": "text", "text": {"content": f"answer {i}"}},
        )  # fmt: skip
    worker = server.app[keys.SUPPORT].worker
    await sender.send_due(pool, worker.client, 3, 0.01, follow_up=worker.follow_up)
    states = await pool.fetch("SELECT state FROM support_replies ORDER BY id")
    assert [s["state"] for s in states] == ["sent", "skipped_quota", "skipped_quota"]
    _, body = await http("GET", desk.shop.fake_url + "/dev/messages")
    waiting = [m for m in body["messages"] if m["kind"] == "subscribe" and m["touser"] == openid]  # type: ignore[index]
    assert len(waiting) == 1
    assert waiting[0]["template_id"] == "waiting-tpl"


async def test_no_template_no_waiting_message(desk: Desk) -> None:
    """Without support.waiting_template_id nothing but the skip is recorded."""
    openid = desk.openid("late2")
    await desk.push(user="late2", type="text", content="zzz")
    await desk.settled()
    await desk.pool.execute("UPDATE support_windows SET window_until = now() - interval '1 s'")
    worker = desk.server.app[keys.SUPPORT].worker
    assert worker.follow_up is None
    await desk.pool.execute(
        "INSERT INTO support_replies (openid, kind, body) VALUES ($1, 'agent', $2)",
        openid, {"msgtype": "text", "text": {"content": "x"}},
    )  # fmt: skip
    await sender.send_due(desk.pool, worker.client, 3, 0.01)
    _, body = await http("GET", desk.shop.fake_url + "/dev/messages")
    assert [m for m in body["messages"] if m["touser"] == openid] == []  # type: ignore[index]
