"""Live figures: cheap incremental counters in Redis, bumped once per writer flush.

Per room, one hash ``lc:an:{room}:live`` (hash-tagged by room): ``t:<type>`` events of each
type, ``p:<seq>:<type>`` events of each type for pushed bubble ``seq``, ``gmv_fen``; and a set
``lc:an:{room}:buyers`` of paying users. Reading them is O(fields) — no scan of the events —
so the live endpoint can be polled every second. They expire a day after the last event (the
reports recompute everything from PostgreSQL; these are only the live view).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from livecommerce.config import AnalyticsConfig
from livecommerce.growth.analytics.events import Row
from livecommerce.growth.analytics.ingest import Outcome, ingest
from livecommerce.growth.analytics.writer import Writer

TTL_SECONDS = 86400
# Row positions (events.COLUMNS).
_TYPE, _USER, _ROOM, _SEQ, _AMOUNT = 1, 7, 8, 10, 12


def live_key(room_id: int) -> str:
    return f"lc:an:{{{room_id}}}:live"


def buyers_key(room_id: int) -> str:
    return f"lc:an:{{{room_id}}}:buyers"


class LiveCounters:
    """The Redis counters behind ``GET /api/host/rooms/{id}/analytics/live``."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, rows: list[Row]) -> None:
        """Count freshly stored ``rows`` (each once: the writer passes only new ones)."""
        counts: Counter[tuple[int, str]] = Counter()
        buyers: dict[int, set[int]] = {}
        for r in rows:
            room = r[_ROOM]
            if room is None:
                continue
            counts[(room, f"t:{r[_TYPE]}")] += 1
            if r[_SEQ] is not None:
                counts[(room, f"p:{r[_SEQ]}:{r[_TYPE]}")] += 1
            if r[_TYPE] == "order_paid":
                counts[(room, "gmv_fen")] += r[_AMOUNT] or 0
                if r[_USER] is not None:
                    buyers.setdefault(room, set()).add(r[_USER])
        if not counts:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            rooms = set()
            for (room, fld), n in counts.items():
                pipe.hincrby(live_key(room), fld, n)
                rooms.add(room)
            for room, users in buyers.items():
                pipe.sadd(buyers_key(room), *users)
                pipe.expire(buyers_key(room), TTL_SECONDS)
            for room in rooms:
                pipe.expire(live_key(room), TTL_SECONDS)
            await pipe.execute()

    async def read(self, room_id: int) -> tuple[dict[str, int], int]:
        """(the room's counters, paid buyers)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(live_key(room_id))
            pipe.scard(buyers_key(room_id))
            raw, buyers = await pipe.execute()
        return {k.decode(): int(v) for k, v in raw.items()}, int(buyers)


Tracker = Callable[[str, str, list[Any], int], Awaitable[Outcome]]


def socket_tracker(writer: Writer, cfg: AnalyticsConfig) -> Tracker:
    """What the viewer endpoint calls for a ``track`` frame: (kind, subject, events, offset)."""

    async def track(kind: str, subject: str, events: list[Any], offset_ms: int) -> Outcome:
        return await ingest(writer, cfg, events, kind=kind, subject=subject, offset_ms=offset_ms)

    return track
