"""The one way a room message is published, and the atomic reads that go with it.

``publish`` runs one Lua script (``lua/publish.lua``): INCR the room's sequence number, splice
``seq`` and the Redis server time ``ts`` into the already-encoded body, append the frame to the
room's bounded history, optionally update the room's state hash, and PUBLISH it to every node
(SPUBLISH on the room's sharded channel on a cluster: ``realtime/shards.py``).
Whatever produces a room message (host push, timer, order event, likes) goes through here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from livecommerce import redis_keys as rk
from livecommerce.config import RoomsConfig
from livecommerce.realtime.protocol import encode
from livecommerce.redis_clients import is_cluster

# The keys and arguments of one publish script call, encoded ahead of time.
PreparedPublish = tuple[list[str], list[Any]]

_LUA = Path(__file__).resolve().parent.parent / "lua"


def _script(name: str, *, core: bool = True) -> str:
    body = (_LUA / f"{name}.lua").read_text()
    return ((_LUA / "publish_core.lua").read_text() + "\n" + body) if core else body


@dataclass(frozen=True, slots=True)
class Published:
    seq: int
    frame: bytes
    fresh: bool  # False when the idempotency key had published before


@dataclass(frozen=True, slots=True)
class PublishItem:
    room_id: int
    body: dict[str, Any]
    state_op: str = ""
    state_field: str = ""
    idempotency_key: str | None = None


def _published(res: Any) -> Published:
    return Published(seq=int(res[0]), frame=bytes(res[1]), fresh=bool(int(res[2])))


@dataclass(frozen=True, slots=True)
class CommentDeletion:
    """A comment's deletion (``lua/comment_delete.lua``): the ``comment_delete`` frame's seq."""

    seq: int
    checked: bool  # False: the comment is older than history keeps, so it was not checked
    repeated: bool  # True: deleted before (that frame's seq); nothing was published now


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    state: dict[str, bytes]
    missed: list[bytes]
    complete: bool


class Broker:
    """Room publishing and reads on one Redis client; scripts are registered once."""

    def __init__(self, redis: Redis, rooms: RoomsConfig) -> None:
        self.redis = redis
        self.cfg = rooms
        self._publish = redis.register_script(_script("publish"))
        self._snapshot = redis.register_script(_script("snapshot"))
        self._tick = redis.register_script(_script("room_tick"))
        self._head = redis.register_script(_script("room_head"))
        self._room_info = redis.register_script(_script("room_info"))
        self._comment_delete = redis.register_script(_script("comment_delete"))
        # The channel the scripts publish a room's frames on (lua/publish_core.lua, lc_pub).
        self.channel = rk.room_shard_channel if is_cluster(redis) else rk.room_channel
        # Told of every fresh publish as (room_id, Published), synchronously and without
        # awaiting (analytics records pushes from it); it must not raise or block.
        self.on_published: Callable[[int, Published], None] | None = None

    @property
    def _max_age_ms(self) -> int:
        return int(self.cfg.history_max_age_seconds * 1000)

    async def publish(
        self,
        room_id: int,
        body: dict[str, Any],
        *,
        state_op: str = "",
        state_field: str = "",
        idempotency_key: str | None = None,
    ) -> Published:
        """Publish ``body`` (a dict with ``type``) to the room; returns its seq and frame.

        ``state_op`` 'set'/'del' stores/removes the frame under ``state_field`` of the room's state
        hash in the same atomic step (e.g. the current bubble). With ``idempotency_key``, a second
        publish with the same key publishes nothing and returns ``fresh=False`` with the first seq.
        """
        item = PublishItem(room_id, body, state_op, state_field, idempotency_key)
        keys, args = self._publish_call(item)
        published = _published(await self._publish(keys=keys, args=args))
        if self.on_published is not None and published.fresh:
            self.on_published(room_id, published)
        return published

    async def publish_many(self, items: list[PublishItem]) -> list[Published]:
        """Several publishes in one pipelined round trip (each still one atomic script run).

        Used for bursts, e.g. scheduled pushes that share a due time: N pushes cost one round
        trip instead of N.
        """
        return await self.publish_prepared(self.prepare(items))

    def prepare(self, items: list[PublishItem]) -> list[PreparedPublish]:
        """Encode ``items`` now, to publish later with :meth:`publish_prepared` (the timer
        builds a burst before its due time so only the round trip is left at the due time)."""
        return [self._publish_call(item) for item in items]

    async def publish_prepared(self, calls: list[PreparedPublish]) -> list[Published]:
        """One pipelined round trip of EVALSHA calls. Not through redis-py's Script in a
        pipeline, which first checks SCRIPT EXISTS (a second round trip): when Redis lacks the
        script (restart, SCRIPT FLUSH), the calls that got NOSCRIPT are repeated after a load —
        nothing ran for them, so nothing is published twice."""
        if not calls:
            return []
        results = await self._evalsha_pipeline(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            await self.redis.script_load(self._publish.script)
            again = await self._evalsha_pipeline([calls[i] for i in missing])
            for i, r in zip(missing, again, strict=True):
                results[i] = r
        for r in results:
            if isinstance(r, Exception):
                raise r
        out = [_published(r) for r in results]
        if self.on_published is not None:
            for (_, args), pub in zip(calls, out, strict=True):
                if pub.fresh:
                    room_id = rk.room_id_from_channel(str(args[0]).encode())
                    self.on_published(room_id or 0, pub)
        return out

    async def _evalsha_pipeline(self, calls: list[PreparedPublish]) -> list[Any]:
        sha = self._publish.sha
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                # execute_command, not pipe.evalsha: a cluster pipeline refuses the latter
                # (it routes this by the first key, all of one room's slot).
                pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)

    def _publish_call(self, item: PublishItem) -> PreparedPublish:
        body = item.body
        if "type" not in body or "seq" in body or "ts" in body:
            raise ValueError("body needs a type and must not carry seq/ts")
        room_id, idem = item.room_id, item.idempotency_key or ""
        keys = [
            rk.room_seq(room_id),
            rk.room_history(room_id),
            rk.room_state(room_id),
            rk.room_publish_idem(room_id, idem) if idem else rk.room_seq(room_id),
        ]
        args = [
            self.channel(room_id),
            encode(body),
            self.cfg.history_max_messages,
            self._max_age_ms,
            item.state_op,
            item.state_field,
            "1" if idem else "0",
            rk.PUBLISH_IDEMPOTENCY_TTL_SECONDS,
        ]
        return keys, args

    async def delete_comment(
        self, room_id: int, comment_seq: int, epoch: str = ""
    ) -> CommentDeletion | None:
        """Publish ``{"type": "comment_delete", "comment_seq": N}`` if the room's frame N is a
        comment, once (atomically: one script). None: N is not a comment of the room's stream
        (another kind of frame, or past its current seq). N older than the history is not
        checked (``checked=False``) and deleted all the same: clients may still show it.
        ``epoch`` (not empty): the stream's epoch the comment was seen in; another one is None
        too (seqs restart on a new epoch: N may be another comment)."""
        body = {"type": "comment_delete", "comment_seq": comment_seq}
        res = await self._comment_delete(
            keys=[rk.room_seq(room_id), rk.room_history(room_id), rk.room_state(room_id)],
            args=[
                self.channel(room_id),
                comment_seq,
                encode(body),
                self.cfg.history_max_messages,
                self._max_age_ms,
                epoch,
            ],
        )
        outcome = bytes(res[0])
        if outcome == b"not_found":
            return None
        deletion = CommentDeletion(
            seq=int(res[1]), checked=bool(int(res[3])), repeated=outcome == b"repeated"
        )
        if not deletion.repeated and self.on_published is not None:
            self.on_published(room_id, Published(seq=deletion.seq, frame=bytes(res[2]), fresh=True))
        return deletion

    async def snapshot(self, room_id: int, last_seq: int | None) -> Snapshot:
        """The room as a joining viewer starts from (its epoch renewed first if the stream
        could have been reset: ``lua/publish_core.lua``), with the frames after ``last_seq``
        when history still holds all of them (``complete``)."""
        res = await self._snapshot(
            keys=[rk.room_seq(room_id), rk.room_history(room_id), rk.room_state(room_id)],
            args=[-1 if last_seq is None else last_seq, self.channel(room_id)],
        )
        flat = res[1]
        state = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        return Snapshot(
            seq=int(res[0]), state=state, missed=[bytes(m) for m in res[2]], complete=bool(res[3])
        )

    async def history_between(self, room_id: int, after: int, upto: int) -> list[tuple[int, bytes]]:
        """Frames with after < seq <= upto still in history, oldest first (for gap filling)."""
        items = cast(
            "list[tuple[bytes, float]]",
            await self.redis.zrangebyscore(
                rk.room_history(room_id), f"({after}", upto, withscores=True
            ),
        )
        return [(int(score), m.split(b"|", 1)[1]) for m, score in items]

    async def current_seq(self, room_id: int) -> int:
        return int(await self.redis.get(rk.room_seq(room_id)) or 0)

    async def head(self, room_id: int) -> tuple[str, int]:
        """(epoch, current seq) of the room, the epoch renewed first if the stream could have
        been reset; epoch ``""`` when Redis knows nothing of the room (it lost all of it)."""
        res = await self._head(
            keys=[rk.room_seq(room_id), rk.room_state(room_id)], args=[self.channel(room_id)]
        )
        raw = res[0]
        return (raw.decode() if isinstance(raw, bytes) else str(raw)), int(res[1])

    async def tick(self, room_id: int, node_id: str, viewers: int, likes: int) -> int:
        """Report this node's viewers/likes; publishes counts if this node wins the tick."""
        tick_ms = max(1, int(self.cfg.tick_seconds * 1000) - 50)
        res = await self._tick(
            keys=[
                rk.room_seq(room_id),
                rk.room_history(room_id),
                rk.room_state(room_id),
                rk.room_presence(room_id),
                rk.room_tick_lock(room_id),
                rk.room_pending_likes(room_id),
            ],
            args=[
                self.channel(room_id),
                self.cfg.history_max_messages,
                self._max_age_ms,
                node_id,
                viewers,
                likes,
                int(self.cfg.tick_seconds * 3000) + 2000,
                tick_ms,
            ],
        )
        return int(res)

    async def set_room_info(self, room_id: int, info: dict[str, Any]) -> None:
        """Cache the room's public info in its state (making the room's epoch if it has none)."""
        await self._room_info(
            keys=[rk.room_seq(room_id), rk.room_state(room_id)],
            args=[self.channel(room_id), encode(info)],
        )
