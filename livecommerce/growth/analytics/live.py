"""Live figures: cheap incremental counters in Redis, bumped once per writer flush.

Per room, one hash ``lc:an:{room}:live`` (hash-tagged by room): ``t:<type>`` events of each
type, ``p:<seq>:<type>`` events of each type for pushed bubble ``seq``, ``comments_total``.
Reading them is O(fields) — no scan of the events — so the live endpoint can be polled every
second. Paid orders and GMV (server truth, written by database triggers) come from one indexed
query of the room's attributed orders, cached for ``live_interval_seconds``. The counters
expire a day after the last event (the reports recompute everything from PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce import redis_keys as rk
from livecommerce.aio import check_cancelled
from livecommerce.config import AnalyticsConfig
from livecommerce.growth.analytics.events import Row, ms_to_dt, server_event_id, server_row
from livecommerce.growth.analytics.ingest import Outcome, ingest
from livecommerce.growth.analytics.writer import Writer

log = logging.getLogger("livecommerce.analytics")
TTL_SECONDS = 86400
# A room's live hash takes new fields of client-named seqs and ``custom:`` types only below this
# many fields (it is read whole every second; the server's own types, the fields already there
# and published pushes are always counted).
MAX_FIELDS = 5000
# Row positions (events.COLUMNS).
_TYPE, _AT, _ROOM, _GOODS, _SEQ, _PROPS = 1, 2, 8, 9, 10, 15
_KEY = itemgetter(_ROOM, _TYPE, _SEQ)


_LIVE_ADD = (Path(__file__).resolve().parents[2] / "lua" / "analytics_live_add.lua").read_text()


def live_key(room_id: int) -> str:
    return f"lc:an:{{{room_id}}}:live"


class LiveCounters:
    """The Redis counters behind ``GET /api/host/rooms/{id}/analytics/live``."""

    def __init__(self, redis: Redis, max_fields: int = MAX_FIELDS) -> None:
        self.redis = redis
        self.max_fields = max_fields
        self._add = redis.register_script(_LIVE_ADD)
        # room id -> (monotonic time, paid figures): the live endpoint's 1 s cache.
        self.orders_cache: dict[int, tuple[float, dict[str, int]]] = {}

    async def add(self, rows: list[Row]) -> None:
        """Count freshly stored ``rows`` (each once: the writer passes only new ones): the
        published pushes' fields first (always counted after that), then one
        script call per room (``analytics_live_add.lua``; a pipeline of a command per field
        cost the servers about 0.2 µs an event). Raises RedisError."""
        # Counted by (room, type, seq) first (itemgetter and Counter iterate in C), fields
        # formatted once each; events without a room are counted and then skipped.
        by_key: Counter[tuple[int | None, str, int | None]] = Counter(map(_KEY, rows))
        counts: Counter[tuple[int, str]] = Counter()
        pushed = False
        for (room, type_, seq), n in by_key.items():
            if room is None:
                continue
            counts[(room, f"t:{type_}")] += n
            if seq is not None:
                counts[(room, f"p:{seq}:{type_}")] += n
                pushed = pushed or type_ == "push_published"
        if not counts:
            return
        if pushed:
            async with self.redis.pipeline(transaction=False) as pipe:
                for r in rows:
                    if r[_TYPE] == "push_published" and r[_SEQ] is not None:
                        key = live_key(r[_ROOM])
                        pipe.hset(key, items=[x for kv in push_meta(r).items() for x in kv])
                        pipe.expire(key, TTL_SECONDS)
                await pipe.execute()
        args: dict[int, list[str | int]] = {}
        for (room, fld), n in counts.items():
            args.setdefault(room, [TTL_SECONDS, self.max_fields]).extend((fld, n))
        for room, a in args.items():  # one after another: one pooled connection, as a pipeline
            await self._add(keys=[live_key(room)], args=a)

    async def read(self, room_id: int) -> dict[str, Any]:
        """The room's live figures from Redis: viewers and likes (room state), comments,
        events per type, and per push seq its goods, time, lateness, schedule, reach (viewers
        online at the push), impressions, clicks, detail views and ``order_created`` events.
        Only seqs the server recorded as pushed are listed (client events can name any seq)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(live_key(room_id))
            pipe.hmget(rk.room_state(room_id), ["viewers", "likes"])
            raw, (viewers, likes) = await pipe.execute()
        fields = {k.decode(): int(v) for k, v in raw.items()}
        events = {k[2:]: v for k, v in fields.items() if k.startswith("t:")}
        pushes: dict[int, dict[str, int]] = {}
        for k, v in fields.items():
            if k.startswith("p:"):
                _, seq, type_ = k.split(":", 2)
                pushes.setdefault(int(seq), {})[type_] = v
        return {
            "viewers": int(viewers or 0),
            "likes": int(likes or 0),
            "comments": fields.get(COMMENTS_FIELD, 0),
            "events": events,
            "pushes": [
                {
                    "push_seq": seq,
                    "goods_id": c.get("goods") or None,
                    "pushed_at_ms": c.get("at_ms"),
                    "lateness_ms": c.get("late_ms"),
                    "schedule_id": c.get("schedule"),
                    "viewers": c.get("reach", 0),
                    "impressions": c.get("bubble_impression", 0),
                    "clicks": c.get("bubble_click", 0),
                    "detail_views": c.get("goods_detail_view", 0),
                    "orders": c.get("order_created", 0),
                }
                for seq, c in sorted(pushes.items())
                # Only pushes the server published (their push_published row wrote ``at_ms``):
                # a viewer's event naming any other seq must not show as a phantom push.
                if "at_ms" in c
            ],
        }


def push_meta(row: Row) -> dict[str, int]:
    """The hash fields of a ``push_published`` row: ``p:<seq>:reach`` (viewers online at the
    push), ``:goods``, ``:at_ms``, and for a scheduled push ``:late_ms`` and ``:schedule``."""
    props = orjson.loads(row[_PROPS]) if row[_PROPS] else {}
    seq = row[_SEQ]
    out = {
        f"p:{seq}:reach": int(props.get("viewers_online") or 0),
        f"p:{seq}:goods": int(row[_GOODS] or 0),
        f"p:{seq}:at_ms": int(row[_AT].timestamp() * 1000),
    }
    if props.get("lateness_ms") is not None:
        out[f"p:{seq}:late_ms"] = int(props["lateness_ms"])
    if props.get("schedule_id") is not None:
        out[f"p:{seq}:schedule"] = int(props["schedule_id"])
    return out


# (token kind, subject, events (None: not decoded yet), offset_ms, the frame's JSON for the
# one-pass typed decode)
Tracker = Callable[[str, str, list[Any] | None, int, bytes], Awaitable[Outcome]]


def socket_tracker(writer: Writer, cfg: AnalyticsConfig) -> Tracker:
    """What the viewer endpoint calls for a ``track`` frame: (kind, subject, events, offset)."""

    async def track(
        kind: str, subject: str, events: list[Any] | None, offset_ms: int, raw: bytes
    ) -> Outcome:
        return await ingest(
            writer, cfg, events, kind=kind, subject=subject, offset_ms=offset_ms, raw=raw
        )

    return track


COMMENTS_FIELD = "comments_total"


async def sample_minutes(
    room_ids: Callable[[], list[int]],
    redis: Redis,
    writer: Writer,
    interval: float,
) -> None:
    """Forever: once per minute per room live on this node, a ``room_minute`` event with the
    room's viewers online (cluster-wide), and its likes and comments totals so far. The event
    id is (room, minute), so with several nodes each minute is stored once."""
    last: dict[int, int] = {}
    while True:
        check_cancelled()
        minute = int(time.time() // 60)
        due = [r for r in room_ids() if last.get(r) != minute]
        if due:
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for room in due:
                        pipe.hmget(rk.room_state(room), ["viewers", "likes"])
                        pipe.hget(live_key(room), COMMENTS_FIELD)
                    got = await pipe.execute()
            except (RedisError, OSError) as exc:  # Redis down or failing over: next pass
                log.warning("room minute samples not read: %s", exc)
                await asyncio.sleep(interval)
                continue
            rows = []
            for i, room in enumerate(due):
                viewers, likes = got[2 * i]
                comments = got[2 * i + 1]
                rows.append(
                    server_row(
                        "room_minute",
                        event_id=server_event_id("room_minute", room, minute),
                        room_id=room,
                        props={
                            "viewers": int(viewers or 0),
                            "likes_total": int(likes or 0),
                            "comments_total": int(comments or 0),
                        },
                        at=ms_to_dt(minute * 60_000),
                    )
                )
                last[room] = minute
            try:
                await writer.write(rows)
            except Exception as exc:  # the next pass retries (the id keeps it once)
                log.warning("room minute samples not stored: %s", exc)
                for room in due:
                    last.pop(room, None)
        for room in [r for r in last if r not in set(room_ids())]:
            last.pop(room, None)
        await asyncio.sleep(interval)
