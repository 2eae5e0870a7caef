"""WeChat's reply window: the ledger stops replies before WeChat would, 45015/45047 handled."""

from __future__ import annotations

import asyncio

from livecommerce import keys
from livecommerce.support import sender
from livecommerce.support.cs_client import CsClient
from tests.support import http
from tests.support_cs.conftest import Desk


async def queue_replies(desk: Desk, openid: str, n: int) -> None:
    """Queue ``n`` replies to ``openid`` as processing would (no inbox row)."""
    for i in range(n):
        body = {"msgtype": "text", "text": {"content": f"r{i}"}}
        await desk.pool.execute(
            "INSERT INTO support_replies (openid, kind, body) VALUES ($1, 'text', $2)", openid, body
        )


async def drain(desk: Desk) -> None:
    ctx = desk.server.app[keys.SUPPORT]
    await sender.send_due(desk.pool, ctx.client, 3, 0.01)
    await desk.settled()


async def states(desk: Desk) -> list[tuple[str, int | None]]:
    rows = await desk.pool.fetch("SELECT state, errcode FROM support_replies ORDER BY id")
    return [(r["state"], r["errcode"]) for r in rows]


async def test_enter_session_allows_two_replies_and_no_more(desk: Desk) -> None:
    """After entering: greeting + 1 more sent; the rest skipped by the ledger, never a 45047."""
    openid = desk.openid("ann")
    await desk.push(user="ann", type="event")
    await desk.settled()
    await queue_replies(desk, openid, 3)
    await drain(desk)
    assert await states(desk) == [
        ("sent", 0),
        ("sent", 0),
        ("skipped_quota", None),
        ("skipped_quota", None),
    ]
    assert len(await desk.sent(openid)) == 2


async def test_message_window_is_five_replies(desk: Desk) -> None:
    """A user message opens 5 replies: the 6th is not sent."""
    openid = desk.openid("ben")
    await desk.push(user="ben", type="text", content="zzz")  # 1 reply (a miss)
    await desk.settled()
    await queue_replies(desk, openid, 5)
    await drain(desk)
    assert [s for s, _ in await states(desk)].count("sent") == 5
    assert (await states(desk))[-1] == ("skipped_quota", None)
    assert len(await desk.sent(openid)) == 5


async def test_closed_window_sends_nothing(desk: Desk) -> None:
    """48 h after the last message (window closed) a reply is recorded as skipped, not sent."""
    openid = desk.openid("cat")
    await desk.push(user="cat", type="text", content="zzz")
    await desk.settled()
    await desk.pool.execute("UPDATE support_windows SET window_until = now() - interval '1 s'")
    await queue_replies(desk, openid, 1)
    await drain(desk)
    assert (await states(desk))[-1] == ("skipped_quota", None)
    assert len(await desk.sent(openid)) == 1


async def test_45047_and_45015_are_final_and_fix_the_ledger(desk: Desk) -> None:
    """WeChat's 45047/45015: the reply is refused, not retried, and the ledger follows WeChat."""
    openid = desk.openid("dan")
    await desk.push(user="dan", type="text", content="zzz")
    await desk.settled()
    await http(
        "POST", desk.shop.fake_url + "/dev/support/fail", json={"openid": openid, "errcode": 45047}
    )
    await queue_replies(desk, openid, 2)
    await drain(desk)
    assert (await states(desk))[1:] == [("refused", 45047), ("skipped_quota", None)]
    conv = await desk.pool.fetchrow("SELECT * FROM support_windows WHERE openid = $1", openid)
    assert conv["window_sent"] == conv["window_limit"]
    await desk.push(user="dan", type="text", content="zzz")  # a new message: a new window
    await desk.settled()
    await http(
        "POST", desk.shop.fake_url + "/dev/support/fail", json={"openid": openid, "errcode": 45015}
    )
    await queue_replies(desk, openid, 1)
    await drain(desk)
    assert (await states(desk))[-1] == ("refused", 45015)
    assert await desk.pool.fetchval(
        "SELECT window_until <= now() FROM support_windows WHERE openid = $1", openid
    )
    attempts = await desk.pool.fetch("SELECT attempts FROM support_replies WHERE state = 'refused'")
    assert [a["attempts"] for a in attempts] == [1, 1]


async def test_transient_errors_are_retried_with_backoff(desk: Desk) -> None:
    """errcode -1 (busy) twice, then OK: the reply is sent on the third attempt, counted once."""
    openid = desk.openid("eli")
    await desk.push(user="eli", type="text", content="zzz")
    await desk.settled()
    await http(
        "POST",
        desk.shop.fake_url + "/dev/support/fail",
        json={"openid": openid, "errcode": -1, "times": 2},
    )
    await queue_replies(desk, openid, 1)
    ctx = desk.server.app[keys.SUPPORT]
    for _ in range(50):  # the sweep would retry every support.sweep_seconds; drive it here
        await sender.send_due(desk.pool, ctx.client, 3, 0.05)
        if not await desk.pool.fetchval(
            "SELECT count(*) FROM support_replies WHERE state = 'pending'"
        ):
            break
        await asyncio.sleep(0.05)
    row = await desk.pool.fetchrow(
        "SELECT state, attempts FROM support_replies ORDER BY id DESC LIMIT 1"
    )
    assert (row["state"], row["attempts"]) == ("sent", 3)
    conv = await desk.pool.fetchrow(
        "SELECT window_sent FROM support_windows WHERE openid = $1", openid
    )
    assert conv["window_sent"] == 2  # the miss reply + this one; failed tries were given back


async def test_typing_follows_wechats_30_second_rule(desk: Desk) -> None:
    """Typing: 45080 with no recent exchange, OK after a message, 45081 while already typing."""
    client: CsClient = desk.server.app[keys.SUPPORT].client
    openid = desk.openid("fox")
    assert await client.typing(openid) == 45080
    await desk.push(user="fox", type="text", content="hi")
    # The worker answers "hi" with its own Typing/CancelTyping around the reply: let it finish.
    await desk.settled()
    for _ in range(500):  # up to ~10 s
        if await worker_typing_done(desk, openid):
            break
        await asyncio.sleep(0.02)
    assert await client.typing(openid) == 0
    assert await client.typing(openid) == 45081
    assert await client.typing(openid, typing=False) == 0
    assert await client.typing(openid) == 0


async def worker_typing_done(desk: Desk, openid: str) -> bool:
    """The worker's own Typing (if it sent one) has been cancelled at the fake."""
    status, body = await http("GET", f"{desk.shop.fake_url}/dev/support/typing?touser={openid}")
    assert status == 200, body
    calls = body["typing"]  # type: ignore[index]
    return not calls or calls[-1]["command"] == "CancelTyping"
