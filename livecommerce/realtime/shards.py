"""Room fan-out on a Redis/Valkey Cluster: sharded pub/sub, one connection per shard.

On one Redis every node pattern-subscribes ``lc:room:*`` (``node.py``). Sharded pub/sub has no
patterns, and a sharded message reaches only the subscribers on the shard that owns the
channel's slot. So on a cluster:

* a room's frames are SPUBLISHed on ``lc:{room:ID}`` (``redis_keys.room_shard_channel``): the
  room's hash tag, hence the same slot — and shard — as the keys the publish script updates;
* this node SSUBSCRIBEs a room's channel on the shard that owns it when the room gets its first
  local viewer (:meth:`ShardedRooms.ensure`, awaited by a join *before* it reads its snapshot, so
  every frame after the snapshot reaches it), and SUNSUBSCRIBEs ``linger_seconds`` after the
  room has no local viewer left;
* one plain connection per shard (the slot owner from the cluster client's topology), never
  retried or resubscribed behind our back (``redis_clients.py``).

Never a silent miss. Whenever a room's subscription may have missed frames — the shard's
connection broke (master died, network), the server unsubscribed us (``sunsubscribe`` push
after the slot moved to another shard), a subscribe was answered MOVED — the room is routed
again (topology refreshed, SSUBSCRIBE on the current owner) and then caught up exactly as after
a broken pattern subscription (:meth:`Node.catch_up`): viewers whose join snapshot was pending are
closed with 1012 (they resume), a changed epoch (a failed-over master has another run_id)
resyncs the room's viewers in-band, otherwise the gap is filled from the room's history.
Because a room's keys and channel live on the same shard, nothing can be published for a room
while its shard is unreachable.

Why not redis-py's ``ClusterPubSub`` (redis-py 8 has ``ssubscribe`` on the asyncio cluster
client): it re-subscribes on its own — after a reconnect (``_resubscribe_shard_channels``) and
after a slot moves (``reinitialize_shard_subscriptions``) — so a gap would pass unnoticed, which
is exactly what this module must see; and its RESP3 messages arrive through push handlers.
Here each shard is a plain RESP2 connection whose every break is ours to handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError, ResponseError

from livecommerce import redis_keys as rk
from livecommerce.aio import check_cancelled
from livecommerce.redis_clients import node_connection_kwargs

log = logging.getLogger("livecommerce.shards")

SUBSCRIBE_TIMEOUT_SECONDS = 5.0
PING_SECONDS = 5.0  # a shard that answers nothing for 3 pings is given up
REROUTE_DELAY_SECONDS = 0.25
LINGER_SECONDS = 30.0

OnFrame = Callable[[int, bytes], Awaitable[None]]
CatchUp = Callable[[Iterable[int]], Awaitable[None]]


class ShardLost(RedisError):
    """The shard connection is gone (or the subscribe was refused): route again."""


class _Shard:
    """One connection to one cluster master, carrying the SSUBSCRIBEs of its rooms."""

    def __init__(self, name: str, conn: Connection, on_frame: OnFrame) -> None:
        self.name = name
        self.conn = conn
        self.on_frame = on_frame
        self.rooms: set[int] = set()  # confirmed subscriptions
        self.leaving: set[int] = set()  # SUNSUBSCRIBE sent, confirmation not yet read
        self.lock = asyncio.Lock()  # one SSUBSCRIBE in flight: an error reply is its answer
        self.pending: tuple[int, asyncio.Future[None]] | None = None
        self.dropped: asyncio.Queue[int] = asyncio.Queue()  # unsubscribed by the server
        self.last_read = time.monotonic()
        self.dead: BaseException | None = None

    async def subscribe(self, room_id: int) -> None:
        async with self.lock:
            if self.dead is not None:
                raise ShardLost(f"shard {self.name} lost: {self.dead}")
            if room_id in self.rooms and room_id not in self.leaving:
                return
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.pending = (room_id, fut)
            try:
                await self.conn.send_command(
                    "SSUBSCRIBE", rk.room_shard_channel(room_id), check_health=False
                )
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                    await fut
            finally:
                self.pending = None

    async def unsubscribe(self, room_id: int, still: Callable[[], bool] = lambda: True) -> None:
        """SUNSUBSCRIBE the room if ``still()`` holds once it is our turn (a join may have
        wanted the room again meanwhile)."""
        async with self.lock:
            if self.dead is not None or room_id not in self.rooms or not still():
                return
            self.rooms.discard(room_id)
            self.leaving.add(room_id)
            await self.conn.send_command(
                "SUNSUBSCRIBE", rk.room_shard_channel(room_id), check_health=False
            )

    async def read_forever(self) -> None:
        """Deliver this shard's frames in order until the connection fails (then raise)."""
        while True:
            check_cancelled()
            try:
                reply = await self.conn.read_response(timeout=math.inf, disconnect_on_error=True)
            except ResponseError as exc:  # MOVED/ASK/CLUSTERDOWN: the answer to the SSUBSCRIBE
                self.last_read = time.monotonic()
                if self.pending is not None and not self.pending[1].done():
                    self.pending[1].set_exception(ShardLost(str(exc)))
                continue
            self.last_read = time.monotonic()
            if not isinstance(reply, list) or len(reply) < 2:
                continue
            kind = bytes(reply[0]).lower()
            if kind == b"smessage":
                room_id = rk.room_id_from_channel(reply[1])
                if room_id is not None and room_id in self.rooms:
                    await self.on_frame(room_id, reply[2])
                continue
            room_id = rk.room_id_from_channel(reply[1]) if isinstance(reply[1], bytes) else None
            if room_id is None:
                continue  # pong
            if kind == b"ssubscribe":
                self.rooms.add(room_id)
                self.leaving.discard(room_id)
                if self.pending is not None and self.pending[0] == room_id:
                    self.pending[1].set_result(None)
            elif kind == b"sunsubscribe":
                if room_id in self.leaving:
                    self.leaving.discard(room_id)
                elif room_id in self.rooms:
                    # Not asked for: the slot moved away (or the node became a replica).
                    self.rooms.discard(room_id)
                    self.dropped.put_nowait(room_id)

    async def ping_forever(self) -> None:
        """Raise when the shard has answered nothing for three pings (a silent network)."""
        while True:
            check_cancelled()
            await asyncio.sleep(PING_SECONDS)
            if time.monotonic() - self.last_read > 3 * PING_SECONDS:
                raise ShardLost(f"shard {self.name} silent for {3 * PING_SECONDS:.0f} s")
            await self.conn.send_command("PING", check_health=False)


class ShardedRooms:
    """This node's sharded room subscriptions (module docstring)."""

    def __init__(
        self,
        cluster: RedisCluster,
        on_frame: OnFrame,
        catch_up: CatchUp,
        is_local: Callable[[int], bool],
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self.cluster = cluster
        self.on_frame = on_frame
        self.catch_up = catch_up
        self.is_local = is_local
        self.linger = linger_seconds
        self.shards: dict[str, _Shard] = {}
        self.room_shard: dict[int, _Shard] = {}
        self.idle_since: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reroute: asyncio.Queue[int] = asyncio.Queue()
        self._connecting: dict[str, asyncio.Future[_Shard]] = {}

    @property
    def subscribed_rooms(self) -> set[int]:
        return set(self.room_shard)

    async def ensure(self, room_id: int) -> None:
        """Return once this node is subscribed to the room on the shard that owns it.

        Raises:
            RedisError, OSError, TimeoutError: no shard could be reached (the join closes 1012).
        """
        self.idle_since.pop(room_id, None)
        shard = self.room_shard.get(room_id)
        if shard is not None and shard.dead is None and room_id in shard.rooms:
            return
        await self._route(room_id, refresh=False)

    async def _route(self, room_id: int, *, refresh: bool) -> None:
        if refresh:
            await self.cluster.nodes_manager.initialize()
        node = self.cluster.get_node_from_key(rk.room_shard_channel(room_id))
        if node is None:
            raise ShardLost(f"no node serves room {room_id}")
        old = self.room_shard.get(room_id)
        try:
            shard = await self._shard(node.name, node.host, int(node.port))
            await shard.subscribe(room_id)
        except (RedisError, OSError, TimeoutError):
            if refresh:
                raise
            # MOVED, or the node we knew is gone: the topology changed; learn it and retry.
            await self._route(room_id, refresh=True)
            return
        self.room_shard[room_id] = shard
        if old is not None and old is not shard and old.dead is None:
            await old.unsubscribe(room_id)

    async def _shard(self, name: str, host: str, port: int) -> _Shard:
        shard = self.shards.get(name)
        if shard is not None and shard.dead is None:
            return shard
        waiting = self._connecting.get(name)
        if waiting is not None:
            return await asyncio.shield(waiting)
        fut: asyncio.Future[_Shard] = asyncio.get_running_loop().create_future()
        self._connecting[name] = fut
        try:
            kwargs = node_connection_kwargs(self.cluster)
            kwargs.pop("connection_class", None)
            kwargs.pop("maint_notifications_config", None)
            kwargs.pop("oss_cluster_maint_notifications_handler", None)
            # RESP2: subscription replies and messages are plain arrays read in order (RESP3
            # would hand them to redis-py's push handlers); no read timeout (ping_forever).
            kwargs.update(protocol=2, socket_timeout=None)
            conn = Connection(host=host, port=port, **kwargs)
            await conn.connect()  # type: ignore[no-untyped-call]
            shard = _Shard(name, conn, self.on_frame)
            self.shards[name] = shard
            self._spawn(self._run_shard(shard))
            fut.set_result(shard)
            return shard
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it, nobody else
            raise
        finally:
            self._connecting.pop(name, None)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_shard(self, shard: _Shard) -> None:
        """Read the shard until it fails; then route its rooms again (and catch them up)."""
        dropped = asyncio.ensure_future(self._forward_dropped(shard))
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(shard.read_forever())
                tg.create_task(shard.ping_forever())
        except* (RedisError, OSError) as group:
            shard.dead = group.exceptions[0]
        except* Exception as group:  # never leave rooms unsubscribed silently
            shard.dead = group.exceptions[0]
            log.error("shard reader %s failed", shard.name, exc_info=group.exceptions[0])
        finally:
            dropped.cancel()
            if shard.dead is None:
                shard.dead = asyncio.CancelledError()
            if self.shards.get(shard.name) is shard:
                del self.shards[shard.name]
            with contextlib.suppress(RedisError, OSError):
                await shard.conn.disconnect(nowait=True)
            if shard.pending is not None and not shard.pending[1].done():
                shard.pending[1].set_exception(ShardLost(f"shard {shard.name} lost"))
        lost = [r for r, s in self.room_shard.items() if s is shard]
        if lost:
            log.warning("shard %s lost (%s): %d rooms to route again", shard.name, shard.dead,
                        len(lost))  # fmt: skip
        for room_id in lost:
            self._reroute.put_nowait(room_id)

    async def _forward_dropped(self, shard: _Shard) -> None:
        while True:
            check_cancelled()
            room_id = await shard.dropped.get()
            if self.room_shard.get(room_id) is shard:
                log.info("room %s: unsubscribed by shard %s (slot moved)", room_id, shard.name)
                self._reroute.put_nowait(room_id)

    async def run(self) -> None:
        """Forever: route again (and catch up) rooms whose subscription may have missed frames;
        unsubscribe rooms with no local viewer for ``linger_seconds``."""
        sweeper = asyncio.ensure_future(self._sweep_forever())
        try:
            while True:
                check_cancelled()
                rooms = {await self._reroute.get()}
                while not self._reroute.empty():
                    rooms.add(self._reroute.get_nowait())
                await self._recover(rooms)
        finally:
            sweeper.cancel()
            for task in list(self._tasks):
                task.cancel()
            for shard in list(self.shards.values()):
                with contextlib.suppress(RedisError, OSError):
                    await shard.conn.disconnect(nowait=True)

    async def _recover(self, rooms: set[int]) -> None:
        """Subscribe each room again on its current owner, then catch its viewers up."""
        pending = {r for r in rooms if self.is_local(r)}
        for r in rooms - pending:
            self.room_shard.pop(r, None)
        refresh = True
        while pending:
            check_cancelled()
            done: list[int] = []
            for room_id in sorted(pending):
                try:
                    await self._route(room_id, refresh=refresh)
                    refresh = False
                    done.append(room_id)
                except (RedisError, OSError, TimeoutError) as exc:
                    log.info("room %s: shard not reachable yet (%s)", room_id, exc)
                    refresh = True
                    break
            pending.difference_update(done)
            if done:
                try:
                    await self.catch_up(done)
                except Exception:
                    log.exception("catch-up after rerouting failed; routing again")
                    pending.update(done)
                    refresh = True
            if pending:
                await asyncio.sleep(REROUTE_DELAY_SECONDS)

    async def _sweep_forever(self) -> None:
        while True:
            check_cancelled()
            await asyncio.sleep(max(0.05, self.linger / 4))
            now = time.monotonic()
            for room_id, shard in list(self.room_shard.items()):
                if self.is_local(room_id):
                    self.idle_since.pop(room_id, None)
                    continue
                since = self.idle_since.setdefault(room_id, now)
                if now - since < self.linger:
                    continue
                del self.idle_since[room_id]
                if self.room_shard.get(room_id) is shard and not self.is_local(room_id):
                    del self.room_shard[room_id]
                    with contextlib.suppress(RedisError, OSError):
                        await shard.unsubscribe(room_id, functools.partial(self._unwanted, room_id))

    def _unwanted(self, room_id: int) -> bool:
        return room_id not in self.room_shard and not self.is_local(room_id)

    def stats(self) -> dict[str, Any]:
        return {"shards": len(self.shards), "rooms": len(self.room_shard)}
