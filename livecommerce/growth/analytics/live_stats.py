"""Live figures pushed to the host console: one ``stats`` frame per room per second.

Every ``analytics.live_interval_seconds`` this node computes, **once per room** that has the
room owner's console connected here (``Endpoint.host_conns``: a socket joined with a host token
of the room's host), the room's live figures and writes the same encoded frame to each of those
host sockets. Viewers never get it: it is not published to the room's stream (no ``seq``, not
replayed) and only host sockets are in ``host_conns``. The cost grows with the rooms watched by
their hosts on this node, not with viewers.

Where the figures come from (none scans events):

* the room's Redis counters (:class:`~livecommerce.growth.analytics.live.LiveCounters`):
  viewers online, likes, comments, and per pushed bubble its reach (viewers online at the push),
  goods, time, lateness, schedule, impressions, clicks, detail views;
* orders placed, paid orders and GMV per bubble: the room's orders attributed to its bubble
  clicks (``reports.attributed_orders``: an indexed query of the room's goods' orders since the
  room started, one index probe per order for its click), once per tick — its cost grows with
  the room's orders, not with its viewers or events;
* the viewer curve and likes/comments per minute: kept here per room (a sample per tick; the
  minutes before this node began watching come from the room's ``room_minute`` events, read
  once).

Frame (docs/protocol.md, ``stats``)::

    {"type": "stats", "room_id": int, "at": ms, "viewers": int, "peak_viewers": int,
     "likes": int, "comments": int, "likes_per_min": int, "comments_per_min": int,
     "orders": int, "paid_orders": int, "paid_buyers": int, "gmv_fen": int,
     "gpm_fen": float | null,
     "curve": [{"minute": ms, "viewers": int, "likes": int | null, "comments": int | null}],
     "pushes": [{"push_seq", "goods_id", "pushed_at": ms | null, "lateness_ms": int | null,
                 "schedule_id": int | null, "viewers", "impressions", "clicks",
                 "detail_views", "orders", "paid_orders", "gmv_fen"}]}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
import orjson

from livecommerce.aio import check_cancelled
from livecommerce.growth.analytics import reports
from livecommerce.growth.analytics.live import LiveCounters

log = logging.getLogger("livecommerce.analytics")
CURVE_MINUTES = 60  # minutes of viewer curve in a frame


class HostSocket(Protocol):
    """What the pusher needs of a connection (``realtime.conn.Conn``)."""

    def send(self, payload: bytes) -> None: ...


@dataclass
class RoomTrack:
    """One watched room's rolling state on this node."""

    # (monotonic s, likes total, comments total), one per tick over the last minute
    recent: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=120))
    # minute (ms since epoch) -> [peak viewers, likes total, comments total] at its end
    minutes: dict[int, list[int]] = field(default_factory=dict)
    seeded: bool = False


class StatsPusher:
    """Computes and sends the ``stats`` frames of this node (see the module docstring)."""

    def __init__(
        self,
        hosts: Mapping[int, set[Any]],
        counters: LiveCounters,
        pool: asyncpg.Pool,
        *,
        window: timedelta,
        interval: float,
    ) -> None:
        self.hosts, self.counters, self.pool = hosts, counters, pool
        self.window, self.interval = window, interval
        self.rooms: dict[int, RoomTrack] = {}
        self.failing: set[int] = set()  # rooms whose last computation failed

    async def run(self) -> None:
        """Forever: a tick every ``interval`` seconds (a failed room is retried next tick)."""
        while True:
            check_cancelled()
            started = time.monotonic()
            await self.tick()
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - started)))

    async def tick(self) -> None:
        watched = [r for r, conns in self.hosts.items() if conns]
        for room in [r for r in self.rooms if r not in watched]:
            del self.rooms[room]  # no host console here any more: forget its state
        for room_id in watched:
            try:
                payload = orjson.dumps(await self.figures(room_id))
            except Exception as exc:  # a backend hiccup: the next tick tries again
                if room_id not in self.failing:  # logged once per outage, not every second
                    self.failing.add(room_id)
                    log.warning("live stats of room %s not computed: %s", room_id, exc)
                continue
            self.failing.discard(room_id)
            for conn in list(self.hosts.get(room_id, ())):
                conn.send(payload)

    async def figures(self, room_id: int) -> dict[str, Any]:
        """The room's ``stats`` frame body."""
        live = await self.counters.read(room_id)
        track = self.rooms.setdefault(room_id, RoomTrack())
        now_ms = time.time_ns() // 1_000_000
        async with self.pool.acquire() as conn:
            room = await conn.fetchrow(
                "SELECT started_at, created_at FROM live_rooms WHERE id = $1", room_id
            )
            start = (room["started_at"] or room["created_at"]) if room else None
            if not track.seeded and start is not None:
                await self._seed(conn, room_id, track, start, now_ms)
            orders = await self._orders(conn, room_id, start)
        self._sample(track, now_ms, live)
        by_push: dict[int, list[int]] = {}
        paid_buyers: set[int] = set()
        paid_orders = gmv = 0
        for o in orders:
            row = by_push.setdefault(o["push_seq"], [0, 0, 0])
            row[0] += 1
            if o["paid_at"] is not None:
                row[1] += 1
                row[2] += o["paid_fen"] or 0
                paid_orders += 1
                gmv += o["paid_fen"] or 0
                paid_buyers.add(o["user_id"])
        pushes = []
        for p in live["pushes"]:
            seq = p["push_seq"]
            ordered, paid, push_gmv = by_push.get(seq, (0, 0, 0))
            pushes.append(
                {
                    "push_seq": seq,
                    "goods_id": p["goods_id"],
                    "pushed_at": p["pushed_at_ms"],
                    "lateness_ms": p["lateness_ms"],
                    "schedule_id": p["schedule_id"],
                    "viewers": p["viewers"],
                    "impressions": p["impressions"],
                    "clicks": p["clicks"],
                    "detail_views": p["detail_views"],
                    "orders": ordered,
                    "paid_orders": paid,
                    "gmv_fen": push_gmv,
                }
            )
        curve = self._curve(track, now_ms)
        peak = max([c["viewers"] for c in curve] + [live["viewers"]])
        likes_rate, comments_rate = _per_minute(track)
        return {
            "type": "stats",
            "room_id": room_id,
            "at": now_ms,
            "viewers": live["viewers"],
            "peak_viewers": peak,
            "likes": live["likes"],
            "comments": live["comments"],
            "likes_per_min": likes_rate,
            "comments_per_min": comments_rate,
            "orders": len(orders),
            "paid_orders": paid_orders,
            "paid_buyers": len(paid_buyers),
            "gmv_fen": gmv,
            "gpm_fen": round(gmv * 1000 / peak, 1) if peak else None,
            "curve": curve,
            "pushes": pushes,
        }

    async def _orders(
        self, conn: asyncpg.Connection, room_id: int, start: datetime | None
    ) -> list[asyncpg.Record]:
        """The orders placed since the room started that are attributed to its bubbles."""
        if start is None:
            return []
        goods = [
            r["goods_id"]
            for r in await conn.fetch("SELECT goods_id FROM room_goods WHERE room_id = $1", room_id)
        ]
        if not goods:
            return []
        end = datetime.now(UTC) + timedelta(seconds=1)
        rows = await reports.attributed_orders(conn, goods, start, end, self.window)
        return [o for o in rows if o["room_id"] == room_id and o["push_seq"] is not None]

    async def _seed(
        self,
        conn: asyncpg.Connection,
        room_id: int,
        track: RoomTrack,
        start: datetime,
        now_ms: int,
    ) -> None:
        """The minutes before this node watched the room, from its ``room_minute`` events."""
        since = max(start, datetime.now(UTC) - timedelta(minutes=CURVE_MINUTES))
        rows = await conn.fetch(
            """SELECT occurred_at, props FROM analytics_events
               WHERE room_id = $1 AND type = 'room_minute' AND occurred_at >= $2
               ORDER BY occurred_at""",
            room_id,
            since,
        )
        for r in rows:
            props = r["props"] or {}
            minute = int(r["occurred_at"].timestamp() * 1000) // 60_000 * 60_000
            track.minutes[minute] = [
                int(props.get("viewers") or 0),
                int(props.get("likes_total") or 0),
                int(props.get("comments_total") or 0),
            ]
        track.seeded = True

    def _sample(self, track: RoomTrack, now_ms: int, live: dict[str, Any]) -> None:
        track.recent.append((time.monotonic(), live["likes"], live["comments"]))
        minute = now_ms // 60_000 * 60_000
        cur = track.minutes.get(minute)
        if cur is None:
            track.minutes[minute] = [live["viewers"], live["likes"], live["comments"]]
        else:
            cur[0] = max(cur[0], live["viewers"])
            cur[1], cur[2] = live["likes"], live["comments"]
        horizon = minute - CURVE_MINUTES * 60_000
        for m in [m for m in track.minutes if m < horizon]:
            del track.minutes[m]

    @staticmethod
    def _curve(track: RoomTrack, now_ms: int) -> list[dict[str, Any]]:
        """Per minute: peak viewers, and likes/comments in that minute (None for the first
        minute known: no total before it)."""
        out: list[dict[str, Any]] = []
        prev: list[int] | None = None
        for minute in sorted(track.minutes):
            v = track.minutes[minute]
            out.append(
                {
                    "minute": minute,
                    "viewers": v[0],
                    "likes": max(0, v[1] - prev[1]) if prev else None,
                    "comments": max(0, v[2] - prev[2]) if prev else None,
                }
            )
            prev = v
        return out


def _per_minute(track: RoomTrack) -> tuple[int, int]:
    """Likes and comments in the last 60 s (less while this node has watched the room less)."""
    if len(track.recent) < 2:
        return 0, 0
    now, likes, comments = track.recent[-1]
    first = next(s for s in track.recent if s[0] >= now - 60.0)
    return likes - first[1], comments - first[2]
