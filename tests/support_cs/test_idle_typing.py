"""Idle conversations go back to the bot (through the sweep, exactly once however many sweeps
race), and the typing indicator while the bot prepares a reply (only within WeChat's 30 s rule;
a refusal never holds the reply up), over real HTTP against the fake WeChat."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from livecommerce import keys
from livecommerce.config import Settings
from livecommerce.support import agents
from tests.support import http
from tests.support_cs.agentkit import HostShop, eventually, queued, state
from tests.support_cs.conftest import Desk

Shops = Callable[[], Awaitable[HostShop]]
IDLE, SWEEP = 4.0, 0.2


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short idle time and a fast sweep."""
    support = dataclasses.replace(settings.support, idle_seconds=IDLE, sweep_seconds=SWEEP)
    return dataclasses.replace(settings, support=support)


async def transitions(desk: Desk, user: str) -> list[tuple[str, str, str]]:
    rows = await desk.pool.fetch(
        "SELECT from_state, to_state, reason FROM support_transitions WHERE openid = $1 ORDER BY id",
        desk.openid(user),
    )
    return [(r["from_state"], r["to_state"], r["reason"]) for r in rows]


async def test_idle_conversations_go_back_to_the_bot(desk: Desk, shops: Shops) -> None:
    """A held and a queued conversation with no message for ``idle_seconds``: both go back to
    the bot (one ``idle`` transition each), the agent's seat is freed, the agent's socket sees
    it, and the bot answers the buyer's next message again."""
    s = await shops()
    a1 = await s.agent("A1", capacity=1)
    f1 = await a1.feed()
    c1 = await queued(desk, "ida", f"goods:{s.goods_id}")
    c2 = await queued(desk, "ivo", f"goods:{s.goods_id}")
    # Fresh conversations are not idle for a long idle time.
    assert await agents.return_idle(desk.pool, 3600.0) == {}

    async def both_bot() -> bool:
        return (await state(desk, c1), await state(desk, c2)) == (("bot", None), ("bot", None))

    await eventually(both_bot, within=IDLE + 20)
    await f1.next("conversation", id=c1, state="bot", agent_id=None)
    ida = await transitions(desk, "ida")
    assert ida[-2:] == [
        ("queued", "agent", "assigned"),
        ("agent", "bot", "idle"),
    ]
    # Ivo waited in the queue: idle from there, or (when Ida's idle return came first) given
    # Ida's freed seat and idle from the agent after that.
    ivo = await transitions(desk, "ivo")
    assert ivo[-1] in (("queued", "bot", "idle"), ("agent", "bot", "idle")), ivo
    if ivo[-1][0] == "agent":
        assert ivo[-2] == ("queued", "agent", "assigned"), ivo
    assert await desk.pool.fetchval("SELECT active FROM support_agents WHERE id = $1", a1.id) == 0
    before = len(await desk.sent(desk.openid("ida")))
    await desk.push(user="ida", type="text", content="my orders")
    await desk.settled()
    assert len(await desk.sent(desk.openid("ida"))) == before + 1  # the bot answers again
    await f1.close()


async def test_idle_return_happens_once_however_many_sweeps_race(desk: Desk, shops: Shops) -> None:
    """Five concurrent sweeps (four here, the app's own) over the same idle conversations:
    each goes back to the bot exactly once."""
    s = await shops()
    users = ["rae", "rex", "rio"]
    ids = [await queued(desk, u, f"goods:{s.goods_id}") for u in users]
    await asyncio.sleep(0.1)
    results = await asyncio.gather(*(agents.return_idle(desk.pool, 0.05) for _ in range(4)))
    moved = [cid for r in results for cids in r.values() for cid in cids if cid in ids]
    for u, cid in zip(users, ids, strict=True):
        assert await state(desk, cid) == ("bot", None)
        idle = [t for t in await transitions(desk, u) if t[2] == "idle"]
        assert idle == [("queued", "bot", "idle")]
    assert len(moved) == len(set(moved)) <= len(ids)


async def typing_log(desk: Desk, openid: str) -> list[dict[str, Any]]:
    status, body = await http("GET", f"{desk.shop.fake_url}/dev/support/typing?touser={openid}")
    assert status == 200, body
    assert isinstance(body, dict)
    calls: list[dict[str, Any]] = body["typing"]
    return calls


async def test_typing_while_the_bot_prepares_a_reply(desk: Desk) -> None:
    """A fresh message: Typing before the reply, CancelTyping after it, both accepted."""
    await desk.push(user="tia", type="text", content="my orders")
    await desk.settled()
    openid = desk.openid("tia")
    calls = await typing_log(desk, openid)
    assert [(c["command"], c["errcode"], c["sent_before"]) for c in calls] == [
        ("Typing", 0, 0),
        ("CancelTyping", 0, 1),
    ]
    assert len(await desk.sent(openid)) == 1


async def test_no_typing_outside_the_30_second_rule(desk: Desk) -> None:
    """A message WeChat stamped a minute ago: no typing call at all; the reply still goes."""
    await desk.push(user="tom", type="text", content="my orders", create_time=int(time.time()) - 60)
    await desk.settled()
    openid = desk.openid("tom")
    assert await typing_log(desk, openid) == []
    assert len(await desk.sent(openid)) == 1


async def test_refused_typing_does_not_hold_the_reply(desk: Desk) -> None:
    """WeChat refuses the Typing call (45081: already typing): the reply goes out anyway and
    no CancelTyping follows a Typing that was not shown."""
    openid = desk.openid("tod")
    cs = desk.server.app[keys.FAKE_WECHAT].cs
    cs.typing_until[openid] = time.time() + 3600
    await desk.push(user="tod", type="text", content="my orders")
    await desk.settled()
    calls = await typing_log(desk, openid)
    assert [(c["command"], c["errcode"]) for c in calls] == [("Typing", 45081)]
    assert len(await desk.sent(openid)) == 1


async def test_no_typing_while_an_agent_holds_the_conversation(desk: Desk, shops: Shops) -> None:
    """The bot is silent while an agent holds the conversation: no typing either."""
    s = await shops()
    a1 = await s.agent("A1")
    await a1.online()
    cid = await queued(desk, "tess", f"goods:{s.goods_id}")
    assert (await state(desk, cid))[0] == "agent"
    before = len(await typing_log(desk, desk.openid("tess")))
    await desk.push(user="tess", type="text", content="hello?")
    await desk.settled()
    assert len(await typing_log(desk, desk.openid("tess"))) == before
