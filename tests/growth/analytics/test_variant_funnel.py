"""The per-bubble funnel broken down by variant (JSON and CSV), from real sockets, events and
orders on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import csv
import io

import asyncpg

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.growth.experiments.bucketing import assign
from tests.growth.analytics.conftest import event
from tests.growth.analytics.test_reports import place_order, wait_for
from tests.realtime.conftest import World
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import AppServer, http


async def test_push_funnel_by_variant(server: AppServer, world: World, pool: asyncpg.Pool) -> None:
    """Two users per variant see a tested bubble; one per variant clicks; the b clicker buys:
    by_variant splits impressions, clicks, orders and GMV by the variant each saw."""
    g = world.goods_ids[0]
    status, exp = await http(
        "POST", server.url + "/api/host/experiments", headers=world.host_headers(),
        json={"key": "funnel-ab", "variants": [{"key": "a"}, {"key": "b"}]},
    )  # fmt: skip
    assert status == 201, exp
    url = f"{server.url}/api/host/experiments/{exp['id']}/start"
    assert (await http("POST", url, headers=world.host_headers()))[0] == 200
    rows = await pool.fetch(
        "INSERT INTO users (openid) SELECT 'oFun-' || g FROM generate_series(1, 40) g"
        " RETURNING id, openid"
    )
    by_variant: dict[str, list[tuple[int, str]]] = {"a": [], "b": []}
    for r in rows:
        by_variant["ab"[assign(r["openid"], "funnel-ab", [0.5, 0.5])]].append(
            (r["id"], r["openid"])
        )
    people = by_variant["a"][:2] + by_variant["b"][:2]
    viewers = [
        TestViewer(
            server.ws_url(), world.room_id, issue_token(DEV_SECRET, "user", u, 3600, openid=o)
        )
        for u, o in people
    ]
    await asyncio.gather(*(v.connect() for v in viewers))
    status, pushed = await http(
        "POST", f"{server.url}/api/rooms/{world.room_id}/push", headers=world.host_headers(),
        json={"goods_id": g, "experiment_id": exp["id"],
              "variants": [{"variant": "a"}, {"variant": "b", "title": "B"}]},
    )  # fmt: skip
    assert status == 201, pushed
    seq = pushed["seq"]
    await wait_until(lambda: all(v.of_type("goods_push") for v in viewers))
    await wait_for(pool, "SELECT count(*) FROM analytics_events WHERE type = 'push_published'")
    for i, v in enumerate(viewers):
        seen = v.of_type("goods_push")[0]["experiment"]["variant"]
        assert seen == "aabb"[i]
        claim = {"funnel-ab": seen}
        events = [event("bubble_impression", room_id=world.room_id, goods_id=g, push_seq=seq,
                        variants=claim)]  # fmt: skip
        if i in (0, 2):
            events.append(event("bubble_click", room_id=world.room_id, goods_id=g,
                                push_seq=seq, variants=claim))  # fmt: skip
        await v.send({"type": "track", "events": events})
    await wait_until(lambda: all(any(o.get("type") == "tracked" for o in v.others)
                                 for v in viewers))  # fmt: skip
    order = await place_order(pool, people[2][0], g, 990)
    await pool.execute("UPDATE orders SET status = 'paid', paid_at = now() WHERE id = $1", order)

    status, report = await http(
        "GET", f"{server.url}/api/host/rooms/{world.room_id}/analytics/pushes",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200, report
    (funnel,) = report["pushes"]
    assert funnel["experiment"] == "funnel-ab"
    assert (funnel["impressions"], funnel["clicks"], funnel["orders"]) == (4, 2, 1)
    a, b = funnel["by_variant"]
    assert (a["variant"], a["impressions"], a["clicks"], a["orders"], a["gmv_fen"]) == (
        "a", 2, 1, 0, 0,
    )  # fmt: skip
    assert (b["variant"], b["impressions"], b["clicks"], b["orders"], b["paid_orders"]) == (
        "b", 2, 1, 1, 1,
    )  # fmt: skip
    assert (b["gmv_fen"], b["click_rate"], b["order_rate"]) == (990, 0.5, 1.0)
    assert b["viewers"] is None
    assert b["impression_rate"] is None

    status, text = await http(
        "GET", f"{server.url}/api/host/rooms/{world.room_id}/analytics/pushes.csv",
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 200
    table = list(csv.DictReader(io.StringIO(text)))  # type: ignore[arg-type]
    assert [(r["variant"], r["impressions"], r["orders"]) for r in table] == [
        ("", "4", "1"), ("a", "2", "0"), ("b", "2", "1"),
    ]  # fmt: skip
    assert {r["experiment"] for r in table} == {"funnel-ab"}
    for v in viewers:
        await v.close()
