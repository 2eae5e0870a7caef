"""Server-side events the app records itself (the rest are database triggers, 0009 migration).

``push_published``: every fresh ``goods_push`` frame of the room publish path (a host's push
now, or a scheduled one fired by the timer), and every ``flash_sale_push`` / ``group_offer_push``
(a bubble pushed from the console's shelf; ``props.offer`` = ``"flash_sale"`` / ``"group_offer"``
and ``offer_id``), with the room, goods, the frame's ``seq`` (what clients send back as
``push_seq``), and in ``props``: ``due_ms`` and ``lateness_ms`` (scheduled
pushes), ``schedule_id``, ``show_seconds`` and ``viewers_online`` (the room's cluster-wide count
at that moment). The event id is derived from (room, seq), so it is stored once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import orjson
from redis.asyncio import Redis

from livecommerce import redis_keys as rk
from livecommerce.growth.analytics.events import ms_to_dt, server_event_id, server_row
from livecommerce.growth.analytics.live import COMMENTS_FIELD, live_key
from livecommerce.growth.analytics.writer import Writer
from livecommerce.realtime.broker import Published

log = logging.getLogger("livecommerce.analytics")

# The bubble frames that are a push (frame type -> props["offer"], None for plain goods).
_PUSH_KINDS = {
    "goods_push": None,
    "flash_sale_push": "flash_sale",
    "group_offer_push": "group_offer",
}
_PUSH_TYPES = tuple(f'"type":"{t}"'.encode() for t in _PUSH_KINDS)


class PushRecorder:
    """Broker ``on_published`` hook: one ``push_published`` event per fresh goods push, and
    the room's comment counter (for the per-minute comments of the room report)."""

    def __init__(self, writer: Writer, redis: Redis) -> None:
        self.writer, self.redis = writer, redis
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, room_id: int, pub: Published) -> None:
        head = pub.frame[:64]  # {"seq":N,"ts":T,"type":"..." (lua/publish_core.lua)
        if b'"type":"comment"' in head:
            self._spawn(self._count_comment(room_id))
            return
        if not any(t in head for t in _PUSH_TYPES):
            return
        frame = orjson.loads(pub.frame)
        if frame.get("type") not in _PUSH_KINDS:
            return
        self._spawn(self._record(room_id, frame))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count_comment(self, room_id: int) -> None:
        try:
            await self.redis.hincrby(live_key(room_id), COMMENTS_FIELD, 1)
        except Exception as exc:  # analytics never breaks a comment
            log.warning("comment not counted (room %s): %s", room_id, exc)

    async def _record(self, room_id: int, frame: dict[str, Any]) -> None:
        try:
            raw = await self.redis.hget(rk.room_state(room_id), "viewers")
            props: dict[str, Any] = {
                "viewers_online": int(raw or 0),
                "show_seconds": frame.get("show_seconds"),
            }
            offer = _PUSH_KINDS[frame["type"]]
            goods = frame.get("goods")
            if offer is not None:  # the sale / the group offer carries its goods
                body = frame.get("sale" if offer == "flash_sale" else "offer") or {}
                props["offer"], props["offer_id"] = offer, body.get("id")
                goods = body.get("goods")
            exp = frame.get("experiment")
            if isinstance(exp, dict):  # a bubble experiment (docs/experiments.md)
                props["experiment"] = exp.get("key")
                props["experiment_id"] = exp.get("id")
                props["variants"] = exp.get("variants")
            if "due_ms" in frame:
                props["due_ms"] = frame["due_ms"]
                props["lateness_ms"] = max(0, int(frame["ts"]) - int(frame["due_ms"]))
                props["schedule_id"] = frame.get("schedule_id")
            row = server_row(
                "push_published",
                event_id=server_event_id("push", room_id, frame["seq"]),
                room_id=room_id,
                goods_id=(goods or {}).get("id"),
                push_seq=int(frame["seq"]),
                props=props,
                at=ms_to_dt(int(frame["ts"])),
            )
            await self.writer.write([row])
        except Exception as exc:  # analytics never breaks a push
            log.warning("push_published not recorded (room %s): %s", room_id, exc)

    async def drain(self) -> None:
        """Wait for the pushes being recorded (before the writer's final flush)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
