"""Analytics tried as a demanding user would (break3): funnels checked by hand, CSV export
that a spreadsheet opens safely, props measured in bytes. Real HTTP, PostgreSQL and Redis."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime

from livecommerce.auth.tokens import anonymous_subject, issue_token
from livecommerce.config import DEV_SECRET
from tests.growth.analytics.conftest import event
from tests.realtime.conftest import World
from tests.support import AppServer, http

MINUTE = 60_000


def viewer() -> dict[str, str]:
    """A fresh anonymous viewer (one person of the funnel)."""
    token = issue_token(DEV_SECRET, "viewer", anonymous_subject(), 3600)
    return {"Authorization": f"Bearer {token}"}


async def send(server: AppServer, who: dict[str, str], events: list[dict[str, object]]) -> None:
    status, body = await http("POST", f"{server.url}/api/events", json={"events": events},
                              headers=who)  # fmt: skip
    assert status == 200, body
    assert body["rejected"] == [], body  # type: ignore[index]


async def funnel(
    server: AppServer, world: World, steps: str, *, since_ms: int, csv_: bool = False
) -> object:
    since = datetime.fromtimestamp(since_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    status, body = await http(
        "GET",
        f"{server.url}/api/host/analytics/funnel{'.csv' if csv_ else ''}?steps={steps}"
        f"&room_id={world.room_id}&window_seconds=3600&since={since}",
        headers=world.host_headers(),
    )
    assert status == 200, body
    return body


async def test_funnel_by_hand_and_a_repeated_step(server: AppServer, world: World) -> None:
    """Five people, computed by hand: a step is a later event (not the one before it counted
    again), within the window of the first step 1. A repeated step (page_view twice) counts
    people who did it twice, and its CSV keeps one column per step."""
    t0 = int(time.time() * 1000) - 3 * 3600 * 1000
    plan = {
        "A": [("page_view", 0), ("goods_detail_view", 10), ("add_to_cart", 20)],  # 3 steps
        "B": [("page_view", 0), ("add_to_cart", 5), ("goods_detail_view", 10)],  # cart first: 2
        "C": [("goods_detail_view", 0), ("page_view", 1)],  # 1
        "D": [("page_view", 0), ("goods_detail_view", 120)],  # detail past the window: 1
        "E": [("page_view", 0), ("page_view", 1), ("goods_detail_view", 30), ("add_to_cart", 61)],
    }
    for steps in plan.values():
        await send(server, viewer(), [
            event(t, ts=t0 + m * MINUTE, room_id=world.room_id) for t, m in steps
        ])  # fmt: skip
    body = await funnel(server, world, "page_view,goods_detail_view,add_to_cart", since_ms=t0)
    assert body["rows"] == [  # type: ignore[index]
        {"value": "all", "counts": [5, 3, 1], "rates": [1.0, 0.6, 0.3333]}
    ]
    # Only E viewed twice; every one of the five opened a detail page once.
    body = await funnel(server, world, "page_view,page_view", since_ms=t0)
    assert body["rows"][0]["counts"] == [5, 1], body  # type: ignore[index]
    body = await funnel(server, world, "goods_detail_view,goods_detail_view", since_ms=t0)
    assert body["rows"][0]["counts"] == [5, 0], body  # type: ignore[index]
    body = await funnel(server, world, "page_view,goods_detail_view,page_view", since_ms=t0)
    assert body["rows"][0]["counts"] == [5, 3, 0], body  # type: ignore[index]


async def test_funnel_csv_keeps_a_column_per_step(server: AppServer, world: World) -> None:
    """A repeated step is its own column (`page_view#2`), not merged into the first one."""
    t0 = int(time.time() * 1000) - 3600 * 1000
    twice = [event("page_view", ts=t0 + m * MINUTE, room_id=world.room_id) for m in (0, 1)]
    await send(server, viewer(), twice)
    await send(server, viewer(), [event("page_view", ts=t0, room_id=world.room_id)])
    text = await funnel(server, world, "page_view,page_view,share", since_ms=t0, csv_=True)
    assert isinstance(text, str)
    assert text.startswith("\ufeff")  # UTF-8 with a BOM, as Excel needs it
    assert list(csv.reader(io.StringIO(text[1:]))) == [
        ["value", "page_view", "page_view#2", "share"],
        ["all", "2", "1", "0"],
    ]


async def test_csv_cells_never_start_a_formula(server: AppServer, world: World) -> None:
    """Text a viewer chose (a variant name in `variants`) reaches the host's funnel CSV: a cell
    starting with = + - @ tab or CR is prefixed with `'` so a spreadsheet shows it as text
    (OWASP CSV injection); commas, quotes and newlines are quoted; the JSON keeps the value."""
    t0 = int(time.time() * 1000) - 3600 * 1000
    names = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1)", "\tx", "\rx", 'a,b"c\nd', "中文"]
    for name in names:
        await send(server, viewer(), [
            event("page_view", ts=t0, room_id=world.room_id, variants={"exp": name}),
            event("share", ts=t0 + MINUTE, room_id=world.room_id),
        ])  # fmt: skip
    since = datetime.fromtimestamp(t0 / 1000, UTC).isoformat().replace("+00:00", "Z")
    query = f"steps=page_view,share&room_id={world.room_id}&breakdown=variant&experiment=exp"
    status, text = await http(
        "GET", f"{server.url}/api/host/analytics/funnel.csv?{query}&since={since}",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200, text
    assert isinstance(text, str)
    cells = {row[0] for row in list(csv.reader(io.StringIO(text, newline="")))[1:]}
    assert cells == {
        "'=cmd|' /C calc'!A0", "'+1+1", "'-2+3", "'@SUM(1)", "'\tx", "'\rx", 'a,b"c\nd', "中文",
    }  # fmt: skip
    status, body = await http(
        "GET", f"{server.url}/api/host/analytics/funnel?{query}&since={since}",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200, body
    assert {r["value"] for r in body["rows"]} == set(names)  # type: ignore[index]


async def test_props_limit_is_in_bytes(server: AppServer, world: World) -> None:
    """`props` is at most `analytics.max_props_bytes` (2 KiB) of JSON measured in bytes, exactly
    at the limit accepted, one byte over refused, however many characters that is (中 is 3 bytes
    in UTF-8: 700 of them are 2,100 bytes)."""
    at_limit = {"k": "a" * (2048 - len('{"k":""}'))}
    one_over = {"k": "a" * (2049 - len('{"k":""}'))}
    cjk = {"k": "中" * 700}
    batch = [event(props=p) for p in (at_limit, one_over, cjk)]
    status, body = await http("POST", f"{server.url}/api/events", json={"events": batch},
                              headers=viewer())  # fmt: skip
    assert status == 200, body
    assert body["accepted"] == 1, body  # type: ignore[index]
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [  # type: ignore[index]
        (1, "too_large"),
        (2, "too_large"),
    ]


async def test_a_bad_until_is_named(server: AppServer, world: World) -> None:
    """`until` in the year 9999 (no `since`) is refused naming `until`, not the `since` the
    host never gave."""
    status, body = await http(
        "GET", f"{server.url}/api/host/analytics/goods?until=9999-12-31T23:59:59Z",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 400, body
    assert body["error"]["field"] == "until", body  # type: ignore[index]
