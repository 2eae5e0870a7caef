"""Analytics tried as a new user would (break4, 2026-12-01): bytes that are not UTF-8 inside an
event, funnel parameters that cannot mean anything. Real HTTP, PostgreSQL and Redis."""

from __future__ import annotations

import time
import uuid

import asyncpg

from tests.growth.analytics.conftest import event, stored_ids, user_headers, viewer_headers
from tests.growth.analytics.test_ingest_break2 import answers_to
from tests.growth.analytics.test_reports import make_user, place_order
from tests.realtime.conftest import World
from tests.support import AppServer, http


async def test_an_event_that_is_not_utf8_is_rejected_alone(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A byte that is not UTF-8 inside one event's string (a client that built the JSON by
    hand): the typed one-pass decode raised msgspec's DecodeError, which nothing caught, so the
    batch was a 500 with a traceback logged. Now that event alone is `invalid` and the others
    are stored, whether the bad event comes first or after a malformed one (the per-event
    path), or in a body with a NUL escape (judged one by one from the start)."""
    for prefix in (b"", b'{"id":5,"type":"page_view"},', b'{"id":"x","page":"\\u0000"},'):
        good, bad = uuid.uuid4(), uuid.uuid4()
        body = (
            b'{"events":['
            + prefix
            + b'{"id":"%s","type":"page_view","page":"\xff\xfe"},' % str(bad).encode()
            + b'{"id":"%s","type":"page_view"}]}' % str(good).encode()
        )
        headers = {**viewer_headers(world), "Content-Type": "application/json"}
        status, answer = await http("POST", f"{server.url}/api/events", data=body, headers=headers)
        assert status == 200, (prefix, answer)
        assert isinstance(answer, dict)
        at = 1 if prefix else 0
        assert answer["stored"] == 1, (prefix, answer)
        rejected = {(r["index"], r["code"]) for r in answer["rejected"]}  # type: ignore[attr-defined]
        assert (at, "invalid") in rejected, (prefix, answer)
        assert str(good) in await stored_ids(pool)
        assert str(bad) not in await stored_ids(pool)


async def test_a_variant_breakdown_names_its_experiment(server: AppServer, world: World) -> None:
    """`breakdown=variant` without `experiment` read the variant of the experiment "" (none):
    every row was `(none)`, an answer that looks like data. And `experiment` without
    `breakdown=variant` was silently ignored. Both are a 400 naming `experiment` now; with
    both the funnel is answered."""
    base = f"{server.url}/api/host/analytics/funnel?steps=page_view,share&room_id={world.room_id}"
    for query in ("&breakdown=variant", "&experiment=exp", "&breakdown=room&experiment=exp"):
        for path in ("funnel", "funnel.csv"):
            url = base.replace("funnel?", f"{path}?") + query
            status, body = await http("GET", url, headers=world.host_headers())
            assert status == 400, (query, path, body)
            assert body["error"]["field"] == "experiment", body  # type: ignore[index]
    status, body = await http(
        "GET", f"{base}&breakdown=variant&experiment=exp", headers=world.host_headers()
    )
    assert status == 200, body


async def test_a_track_frame_holds_at_most_a_batch_of_events(
    server: AppServer, world: World
) -> None:
    """`POST /api/events` refuses more than 1,000 events whole (400); the socket's `track`,
    "exactly those rules", judged 2,000 tiny entries (`0,0,…` fits a 4 KiB frame) one by one
    and answered a 160 KB `tracked` of rejections to a 4 KB frame. Now past 1,000 it is an
    `error` `invalid` with the frame's ref, read either way (the track head or the general
    path); 1,000 are still judged one by one."""
    zeros = ",".join(["0"] * 1001)
    got = await answers_to(server, world, [
        f'{{"type":"track","ref":"a","events":[{zeros}]}}',
        f'{{"type":"trac\\u006b","ref":"b","events":[{zeros}]}}',  # the general path
        f'{{"type":"track","ref":"c","events":[{zeros[2:]}]}}',
    ])  # fmt: skip
    assert [(a["type"], a.get("code"), a.get("ref")) for a in got] == [
        ("error", "invalid", "a"),
        ("error", "invalid", "b"),
        ("tracked", None, "c"),
    ], got
    assert "1000" in got[0]["message"], got
    assert len(got[2]["rejected"]) == 1000


async def test_a_room_funnel_reaches_the_orders(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """`bubble_click,order_placed,order_paid` scoped to the host's room: the server's order
    events have no room (an order is of goods, not of a room), so the room's scope left them
    out and every room funnel ended at 0 orders, while the same funnel over the host's goods
    counted them. A room's funnel now also takes the room-less events of the goods on its
    shelf."""
    goods = world.goods_ids[0]
    buyer = await make_user(pool)
    now = int(time.time() * 1000)
    status, body = await http(
        "POST", f"{server.url}/api/events",
        json={"events": [event("bubble_click", ts=now - 60_000, room_id=world.room_id,
                               goods_id=goods, push_seq=1)]},
        headers=user_headers(buyer),
    )  # fmt: skip
    assert status == 200, body
    assert body["stored"] == 1, body  # type: ignore[index]
    order = await place_order(pool, buyer, goods, 990)
    await pool.execute("UPDATE orders SET status = 'paid', paid_at = now() WHERE id = $1", order)
    steps = "bubble_click,order_placed,order_paid"
    for scope in (f"&room_id={world.room_id}", ""):
        status, body = await http(
            "GET",
            f"{server.url}/api/host/analytics/funnel?steps={steps}{scope}",
            headers=world.host_headers(),
        )
        assert status == 200, body
        assert [r["counts"] for r in body["rows"]] == [[1, 1, 1]], (scope, body)  # type: ignore[index]


async def test_a_custom_type_ends_where_its_name_ends(server: AppServer, world: World) -> None:
    """`custom:<name>` is `[a-z0-9_]{1,48}`, but the check's `$` also matched before a final
    newline: `custom:abc\\n` was stored as a type of its own (and a funnel step, its CSV
    column a quoted line break). Now both are refused."""
    status, body = await http(
        "POST", f"{server.url}/api/events",
        json={"events": [event("custom:abc\n"), event("custom:abc")]},
        headers=viewer_headers(world),
    )  # fmt: skip
    assert status == 200, body
    assert body["stored"] == 1, body  # type: ignore[index]
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(0, "unknown_type")]  # type: ignore[index]
    status, body = await http(
        "GET", f"{server.url}/api/host/analytics/funnel?steps=page_view,custom:abc%0A",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 400, body
    assert body["error"]["field"] == "steps", body  # type: ignore[index]
