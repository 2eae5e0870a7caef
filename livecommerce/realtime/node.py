"""This node's two room-level background tasks: the Redis subscriber and the presence tick.

One pattern subscription per node (``lc:room:*``) carries every room frame; frames of rooms with
no local viewer are dropped at once. Frames arrive in publish order on one connection; if the
subscription breaks (Redis restart, network, ``CLIENT KILL TYPE pubsub``), the gap is filled
from the room history before live frames continue — starting from what each local viewer has
(:meth:`Hub.have`), not from what this node last delivered — so local viewers still see every seq
once, in order. Viewers whose join snapshot was being read while the subscription was down are
asked to reconnect (1012): what they missed is not known.

Stream resets (docs/protocol.md, "Epochs"): a room's epoch is renewed in Redis whenever its
stream could have been reset (Redis restarted — empty, with its data, or from an older snapshot
— or failed over, or lost the room's keys), and the script that renews it publishes
``{"epoch":"E"}`` on the room channel before any frame of the new stream. A node that sees a new
epoch — in such a notice, or when it checks its rooms after resubscribing — writes every
welcomed local viewer of the room an in-band ``resync`` (the full state at the snapshot's seq S)
and continues with frames after S. The same happens when a frame is no longer in history.

On a Redis/Valkey Cluster, room frames travel on sharded pub/sub instead, one subscription per
room with local viewers (``shards.py``, the one place that differs); the pattern subscription
then carries only the per-user channels, which a cluster broadcasts to every node.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce import redis_keys as rk
from livecommerce.aio import check_cancelled, close_within
from livecommerce.metrics import Metrics
from livecommerce.outage import BACKEND_ERRORS
from livecommerce.realtime.broker import Broker
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.protocol import CLOSE_RECONNECT, CLOSE_ROOM_ENDED
from livecommerce.realtime.shards import ShardedRooms
from livecommerce.realtime.snapshot import (
    RoomNotFound,
    load_snapshot,
    snapshot_epoch,
    welcome_body,
)
from livecommerce.realtime.variants import resync_writer
from livecommerce.redis_clients import is_cluster, subscription_client

log = logging.getLogger("livecommerce.node")
RECONNECT_DELAY_SECONDS = 0.5
# Every room_state frame is spliced as {"seq":..,"ts":..,"type":"room_state","state":...}.
ROOM_ENDED_MARK = b'"type":"room_state","state":"ended"'
# Published by the scripts when they renew a room's epoch (lua/publish_core.lua).
EPOCH_NOTICE = b'{"epoch":"'

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
        self,
        redis: Redis,
        broker: Broker,
        hub: Hub,
        metrics: Metrics,
        tick_seconds: float,
        pool: asyncpg.Pool,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.redis = redis
        self.broker = broker
        self.pool = pool
        self.hub = hub
        self.metrics = metrics
        self.tick_seconds = tick_seconds
        self.subscribed = asyncio.Event()
        # Cluster: room frames on sharded pub/sub (shards.py); None on one Redis.
        self.shards = (
            ShardedRooms(
                redis,  # type: ignore[arg-type]  # a RedisCluster (redis_clients.py)
                self.on_room_frame,
                self.catch_up,
                lambda room_id: room_id in hub.rooms,
            )
            if is_cluster(redis)
            else None
        )

    async def room_ready(self, room_id: int) -> None:
        """Return once frames of the room reach this node: at once on one Redis (the pattern
        subscription carries every room); on a cluster once the room's shard subscription is
        confirmed. A join awaits this before it reads its snapshot.

        Raises:
            RedisError, OSError, TimeoutError: the room's shard cannot be reached.
        """
        if self.shards is not None:
            await self.shards.ensure(room_id)

    async def deliver(self, room_id: int, seq: int, payload: bytes) -> None:
        room = self.hub.rooms.get(room_id)
        if room is None:
            return
        # The common case (the next frame, nobody joining) needs no look at each viewer.
        if room.joining or room.last_seq is None or seq > room.last_seq + 1:
            have = self.hub.have(room_id)
            if have is not None and seq > have + 1:
                await self.fill_gap(room_id, have, seq - 1)
        self.hub.deliver(room_id, seq, payload)
        if ROOM_ENDED_MARK in payload:
            self._end_room(room_id)

    def _end_room(self, room_id: int) -> None:
        # The live is over: after this last frame, close the room's sockets with 4410 so
        # clients stop instead of reconnecting.
        for viewer in list(self.hub.all_viewers()):
            if viewer.room_id == room_id:
                self.hub.evict(viewer, CLOSE_ROOM_ENDED, "the live has ended", slow=False)

    async def fill_gap(self, room_id: int, after: int, upto: int) -> None:
        """Deliver frames (after, upto] from history to the viewers that lack them; a resync
        of the room when history no longer holds all of them."""
        frames = await self.broker.history_between(room_id, after, upto)
        if [s for s, _ in frames] != list(range(after + 1, upto + 1)):
            log.warning(
                "room %s: frames %s..%s gone from history; resyncing its viewers",
                room_id,
                after + 1,
                upto,
            )
            await self.resync_room(room_id)
            return
        self.metrics.gap_fills.inc(len(frames))
        for seq, payload in frames:
            self.hub.deliver(room_id, seq, payload)
            if ROOM_ENDED_MARK in payload:  # it ended while we were not listening: 4410 too
                self._end_room(room_id)
                return

    def on_epoch(self, room_id: int, epoch: str) -> bool:
        """Note the room's current epoch; True when local viewers are in another one (the
        caller then resyncs the room)."""
        room = self.hub.rooms.get(room_id)
        if room is None or room.epoch == epoch:
            return False
        room.epoch = epoch
        return True

    async def resync_room(self, room_id: int) -> None:
        """Write every welcomed local viewer of the room a ``resync`` (the full state at the
        snapshot's seq S), then frames after S. On a backend error the viewers are closed with
        1012 (they reconnect and resume) and the error propagates."""
        viewers = self.hub.begin_resync(room_id)
        room = self.hub.rooms.get(room_id)
        if room is None:
            return
        if not viewers:
            # Joins in progress check their snapshot's epoch against ours; "" (Redis knew
            # nothing of the room) is no epoch to check against: the next join sets it, and
            # the announcement of the epoch Redis makes next corrects it if need be.
            if room.epoch == "":
                room.epoch = None
            return
        try:
            snap, info = await load_snapshot(self.broker, self.pool, room_id, None)
        except RoomNotFound:
            snap = None
        except BaseException:
            # Whatever stopped us (backend error, cancellation): these viewers must not stay
            # buffering forever.
            for v in viewers:
                self.hub.evict(v, CLOSE_RECONNECT, "resync needed", slow=False)
            raise
        if snap is None or info["state"] == "ended":
            self._end_room(room_id)
            return
        room.epoch = snapshot_epoch(snap)
        frame = resync_writer(self.hub, room_id, welcome_body("resync", snap, info, False))
        for v in viewers:
            if room.joining.get(v) is not None and v.since is None:  # still here
                v.write(frame(v))
                self.hub.finish_join(v, snap.seq, [])
        self.metrics.resyncs.inc(len(viewers))
        log.info("room %s: stream reset, %d local viewers resynced", room_id, len(viewers))

    async def catch_up(self, rooms: Iterable[int] | None = None) -> None:
        """After (re)subscribing: check each local room's epoch (a reset while we were not
        listening is resynced) and deliver what local viewers missed meanwhile. ``rooms``: only
        these (a cluster shard's), default every local room."""
        for room_id in list(self.hub.rooms if rooms is None else rooms):
            if room_id not in self.hub.rooms:
                continue
            # Their snapshot may predate the break: what they missed since is unknown.
            for v in self.hub.pending_snapshots(room_id):
                self.hub.evict(v, CLOSE_RECONNECT, "reconnect and resume", slow=False)
            epoch, current = await self.broker.head(room_id)
            if self.on_epoch(room_id, epoch):
                await self.resync_room(room_id)
                continue
            have = self.hub.have(room_id)
            if have is not None and current > have:
                await self.fill_gap(room_id, have, current)

    async def on_room_message(self, channel: bytes, payload: bytes) -> None:
        room_id = rk.room_id_from_channel(channel)
        if room_id is not None:
            await self.on_room_frame(room_id, payload)

    async def on_room_frame(self, room_id: int, payload: bytes) -> None:
        """One message of the room's channel: an epoch notice or a frame."""
        if room_id not in self.hub.rooms:
            return
        if payload.startswith(EPOCH_NOTICE):
            if self.on_epoch(room_id, payload[len(EPOCH_NOTICE) : -2].decode()):
                await self.resync_room(room_id)
            return
        seq = parse_seq(payload)
        if seq is not None:
            await self.deliver(room_id, seq, payload)

    async def run_subscriber(self) -> None:
        """Forever: subscribe, catch up, deliver; on a Redis error, reconnect and repeat."""
        # Its own client: one that is never silently resubscribed (redis_clients.py).
        subscriber = subscription_client(self.redis)
        try:
            if self.shards is None:
                await self._subscribe_forever(subscriber)
            else:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.shards.run())
                    tg.create_task(self._subscribe_forever(subscriber))
        finally:
            await close_within(subscriber.aclose(), CLOSE_TIMEOUT_SECONDS)

    async def _subscribe_forever(self, subscriber: Redis) -> None:
        while True:
            check_cancelled()
            pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                if self.shards is None:
                    await pubsub.psubscribe(rk.ROOM_CHANNEL_PATTERN, rk.USER_CHANNEL_PATTERN)
                    await self.catch_up()
                else:  # rooms are on sharded pub/sub (shards.py)
                    await pubsub.psubscribe(rk.USER_CHANNEL_PATTERN)
                self.subscribed.set()
                self.metrics.subscriptions.inc()
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
                    await self.on_room_message(msg["channel"], payload)
            except BACKEND_ERRORS as exc:
                # (PostgreSQL: a resync reloads the room info from it.) Joins wait (bounded)
                # until we listen again: none may miss frames meanwhile; the next catch-up
                # covers what was published in between.
                self.subscribed.clear()
                log.warning("room subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
            except Exception:
                # Never let the node stop listening: start over (catching up) instead.
                self.subscribed.clear()
                log.exception("room subscriber failed; resubscribing")
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
            finally:
                # aclose() after a cancelled blocking read can wait forever on redis-py's locks
                # (seen under load at shutdown); bound it. The client's pool close that follows
                # disconnects the connection regardless.
                await close_within(pubsub.aclose(), CLOSE_TIMEOUT_SECONDS)  # type: ignore[no-untyped-call]

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
