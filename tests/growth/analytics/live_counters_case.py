"""One flush's rows over several rooms counted into Redis, and read back: shared by the plain
Redis test and the cluster's script check (tests/cluster/test_scripts.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from livecommerce.growth.analytics.events import server_row
from livecommerce.growth.analytics.live import TTL_SECONDS, LiveCounters, live_key
from tests.growth.analytics.conftest import row


def client_row(type_: str, room: int | None, seq: int | None) -> tuple[Any, ...]:
    r = row()
    return (*r[:1], type_, *r[2:8], room, 3, seq, *r[11:])


async def count_rooms(redis: Any, rooms: tuple[int, ...]) -> None:
    """Every room of ``rooms`` gets its own counts and its push's fields, with the TTL."""
    at = datetime(2026, 11, 30, 12, 0, 1, 500_000, tzinfo=UTC)
    rows = []
    for i, room in enumerate(rooms):
        rows += [client_row("bubble_click", room, 4)] * (i + 1)
        rows += [client_row("bubble_impression", room, 4)] * 3
        rows += [client_row("page_view", room, None)] * 2
        rows.append(server_row("push_published", room_id=room, goods_id=9, push_seq=4,
                               props={"viewers_online": 50 + i, "lateness_ms": 12}, at=at))  # fmt: skip
    rows.append(client_row("share", None, None))  # no room: not counted anywhere
    counters = LiveCounters(redis)
    await counters.add(rows)
    await counters.add(rows[:1])  # a second flush adds to the first
    for i, room in enumerate(rooms):
        live = await counters.read(room)
        clicks = i + 1 + (1 if i == 0 else 0)
        assert live["events"] == {
            "bubble_click": clicks, "bubble_impression": 3, "page_view": 2, "push_published": 1,
        }, (room, live)  # fmt: skip
        assert live["pushes"] == [
            {
                "push_seq": 4, "goods_id": 9, "pushed_at_ms": int(at.timestamp() * 1000),
                "lateness_ms": 12, "schedule_id": None, "viewers": 50 + i,
                "impressions": 3, "clicks": clicks, "detail_views": 0, "orders": 0,
            }
        ], (room, live)  # fmt: skip
        assert 0 < await redis.ttl(live_key(room)) <= TTL_SECONDS
