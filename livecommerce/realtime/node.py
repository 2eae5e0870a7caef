"""This node's two room-level background tasks: the Redis subscriber and the presence tick.

One pattern subscription per node (``lc:room:*``) carries every room frame; frames of rooms with
no local viewer are dropped at once. Frames arrive in publish order on one connection; if the
subscription breaks (Redis restart, network), the gap is filled from the room history before
live frames continue, so local viewers still see every seq once, in order. A frame that is no
longer in history cannot be recovered: its room's local viewers are asked to reconnect (1012),
which gives them a resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce import redis_keys as rk
from livecommerce.aio import check_cancelled
from livecommerce.metrics import Metrics
from livecommerce.realtime.broker import Broker
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.protocol import CLOSE_RECONNECT, CLOSE_ROOM_ENDED

log = logging.getLogger("livecommerce.node")
RECONNECT_DELAY_SECONDS = 0.5
# Every room_state frame is spliced as {"seq":..,"ts":..,"type":"room_state","state":...}.
ROOM_ENDED_MARK = b'"type":"room_state","state":"ended"'

CLOSE_TIMEOUT_SECONDS = 1.0


def parse_seq(payload: bytes) -> int | None:
    """The seq of a published frame, which always starts with ``{"seq":N,``."""
    if not payload.startswith(b'{"seq":'):
        return None
    end = payload.find(b",", 7)
    try:
        return int(payload[7:end])
    except ValueError:
        return None


class Node:
    def __init__(
        self, redis: Redis, broker: Broker, hub: Hub, metrics: Metrics, tick_seconds: float
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.redis = redis
        self.broker = broker
        self.hub = hub
        self.metrics = metrics
        self.tick_seconds = tick_seconds
        self.subscribed = asyncio.Event()

    async def deliver(self, room_id: int, seq: int, payload: bytes) -> None:
        expected = self.hub.next_expected(room_id)
        if expected is not None and seq > expected:
            await self.fill_gap(room_id, expected - 1, seq - 1)
        self.hub.deliver(room_id, seq, payload)
        if ROOM_ENDED_MARK in payload:
            # The live is over: after this last frame, close the room's sockets with 4410 so
            # clients stop instead of reconnecting.
            for viewer in list(self.hub.all_viewers()):
                if viewer.room_id == room_id:
                    self.hub.evict(viewer, CLOSE_ROOM_ENDED, "the live has ended", slow=False)

    async def fill_gap(self, room_id: int, after: int, upto: int) -> None:
        frames = await self.broker.history_between(room_id, after, upto)
        if [s for s, _ in frames] != list(range(after + 1, upto + 1)):
            log.warning(
                "room %s: frames %s..%s gone from history; asking viewers to resync",
                room_id,
                after + 1,
                upto,
            )
            for viewer in list(self.hub.all_viewers()):
                if viewer.room_id == room_id:
                    self.hub.evict(viewer, CLOSE_RECONNECT, "resync needed", slow=False)
            return
        for seq, payload in frames:
            self.hub.deliver(room_id, seq, payload)
        self.metrics.gap_fills.inc(len(frames))

    async def catch_up(self) -> None:
        """After (re)subscribing: deliver what local rooms missed while we were not listening."""
        for room_id in list(self.hub.rooms):
            expected = self.hub.next_expected(room_id)
            if expected is None:
                continue
            current = await self.broker.current_seq(room_id)
            if current >= expected:
                await self.fill_gap(room_id, expected - 1, current)

    async def run_subscriber(self) -> None:
        """Forever: subscribe, catch up, deliver; on a Redis error, reconnect and repeat."""
        while True:
            check_cancelled()
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(rk.ROOM_CHANNEL_PATTERN, rk.USER_CHANNEL_PATTERN)
                await self.catch_up()
                self.subscribed.set()
                while True:
                    check_cancelled()
                    msg = await pubsub.get_message(timeout=None)
                    if msg is None or msg["type"] != "pmessage":
                        continue
                    payload: bytes = msg["data"]
                    if msg["pattern"] == rk.USER_CHANNEL_PATTERN.encode():
                        identity = rk.identity_from_user_channel(msg["channel"])
                        if identity is not None:
                            self.hub.deliver_to(identity, payload)
                        continue
                    room_id = rk.room_id_from_channel(msg["channel"])
                    seq = parse_seq(payload)
                    if room_id is None or seq is None or room_id not in self.hub.rooms:
                        continue
                    await self.deliver(room_id, seq, payload)
            except (RedisError, OSError) as exc:
                log.warning("room subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
            finally:
                # aclose() after a cancelled blocking read can wait forever on redis-py's locks
                # (seen under load at shutdown); bound it. The client's pool close that follows
                # disconnects the connection regardless.
                with contextlib.suppress(TimeoutError, RedisError, OSError):
                    await asyncio.wait_for(pubsub.aclose(), CLOSE_TIMEOUT_SECONDS)  # type: ignore[no-untyped-call]

    async def run_ticker(self) -> None:
        """Every tick: report each local room's viewers and likes (one script call per room)."""
        while True:
            check_cancelled()
            await asyncio.sleep(self.tick_seconds)
            for room_id, room in list(self.hub.rooms.items()):
                likes, room.likes = room.likes, 0
                try:
                    await self.broker.tick(room_id, self.id, room.size, likes)
                except (RedisError, OSError) as exc:
                    room.likes += likes
                    log.warning("presence tick failed for room %s: %s", room_id, exc)
                    continue
                room.reported = room.size > 0
                if room.size == 0:
                    self.hub.forget_if_empty(room_id)
