"""The analytics CSV exports over real HTTP, PostgreSQL and Redis: a report with no rows is
still its header line (after the BOM), the same header its CSV has with rows, so a spreadsheet
opens it with its columns named."""

from __future__ import annotations

import csv
import io
import time
import uuid

import asyncpg
import pytest

from tests.growth.analytics.conftest import event
from tests.growth.analytics.test_reports import push, wait_for
from tests.growth.analytics.test_tried_as_user import send, viewer
from tests.realtime.conftest import World
from tests.support import AppServer, http

FUNNEL_STEPS = "page_view,page_view,share"  # a repeated step: its own column `page_view#2`
HEADERS = {
    "pushes": [
        "push_seq", "goods_id", "pushed_at", "lateness_ms", "viewers", "impressions", "clicks",
        "detail_views", "orders", "paid_orders", "gmv_fen", "impression_rate", "click_rate",
        "detail_rate", "order_rate", "pay_rate", "median_click_seconds", "median_order_seconds",
        "experiment", "variant",
    ],
    "room": [
        "minute", "viewers", "likes", "comments", "gmv_fen", "gpm_fen", "paid_buyers",
        "paid_orders", "orders", "peak_viewers",
    ],
    "goods": [
        "goods_id", "day", "impressions", "clicks", "detail_views", "orders", "paid_orders",
        "gmv_fen", "click_rate", "conversion_rate",
    ],
    "funnel": ["value", "page_view", "page_view#2", "share"],
}  # fmt: skip
# A day long before any test's events: every report is empty over it.
PAST = "since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z"


def path(report: str, world: World) -> str:
    """The CSV export of ``report``, its query started (``&since=…`` may follow)."""
    return {
        "pushes": f"/api/host/rooms/{world.room_id}/analytics/pushes.csv?",
        "room": f"/api/host/rooms/{world.room_id}/analytics/room.csv?",
        "goods": "/api/host/analytics/goods.csv?",
        "funnel": f"/api/host/analytics/funnel.csv?steps={FUNNEL_STEPS}&room_id={world.room_id}&",
    }[report]


async def get_csv(server: AppServer, world: World, report: str, query: str = "") -> str:
    status, text = await http(
        "GET", server.url + path(report, world) + query, headers=world.host_headers()
    )
    assert status == 200, text
    assert isinstance(text, str)
    assert text.startswith("\ufeff")  # UTF-8 with a BOM, as Excel needs it
    return text[1:]


@pytest.mark.parametrize("report", list(HEADERS))
async def test_an_empty_report_is_its_header_line(
    server: AppServer, world: World, report: str
) -> None:
    """No rows in the span: the BOM and the header line, nothing else."""
    text = await get_csv(server, world, report, PAST)
    assert text == ",".join(HEADERS[report]) + "\r\n"


async def test_the_funnel_header_follows_the_steps(server: AppServer, world: World) -> None:
    """An empty funnel without a room (the host's goods) is named by its own steps."""
    status, text = await http(
        "GET",
        f"{server.url}/api/host/analytics/funnel.csv?steps=bubble_click,order_placed,"
        f"order_placed,order_placed&{PAST}",
        headers=world.host_headers(),
    )
    assert status == 200, text
    assert text == "\ufeffvalue,bubble_click,order_placed,order_placed#2,order_placed#3\r\n"


async def test_a_report_with_rows_has_the_same_header(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """With rows, every CSV starts with the header an empty one has."""
    g = world.goods_ids[0]
    await push(server, world, g)
    await wait_for(pool, "SELECT count(*) FROM analytics_events WHERE type = 'push_published'")
    await pool.execute(  # a room_minute sample, as the node writes once a minute
        "INSERT INTO analytics_events (event_id, type, occurred_at, received_at, source, actor,"
        " room_id, props) VALUES ($1, 'room_minute', now(), now(), 'server', 'server', $2,"
        ' \'{"viewers": 3, "likes_total": 5, "comments_total": 1}\')',
        uuid.uuid4(),
        world.room_id,
    )
    now = int(time.time() * 1000)
    await send(server, viewer(), [
        event("page_view", ts=now - 2000, room_id=world.room_id),
        event("page_view", ts=now - 1000, room_id=world.room_id),
        event("goods_impression", ts=now - 1000, room_id=world.room_id, goods_id=g),
    ])  # fmt: skip
    for report, header in HEADERS.items():
        table = list(csv.reader(io.StringIO(await get_csv(server, world, report), newline="")))
        assert table[0] == header, report
        assert len(table) >= 2, (report, table)
        if report == "room":  # every figure of the JSON but top_goods (a table of its own)
            row = dict(zip(header, table[1], strict=True))
            assert (row["orders"], row["peak_viewers"]) == ("0", "3"), row
