"""The agents' real-time feed: every change of a shop's conversations reaches that shop's agents'
sockets on every node.

A change (hand-off, assignment, claim, transfer, close, re-queue, a buyer message to a queued or
held conversation, an agent's reply) is published on the Redis channel ``lc:support:feed`` as
``{"h": host_id, "k": "changed"|"message"|"agents"|"revoked", "c": [conversation ids],
"i": inbox id, "r": reply id, "a": agent id}`` *after* its transaction committed. Each node
listens and, for a shop with sockets open here, reads the current state from PostgreSQL once
and sends the frames (docs/support.md, "Feed frames"): ``queue`` (the shop's whole queue),
``conversation`` (each changed one), ``agents`` (the shop's agents with load and presence),
``message``. ``revoked`` (an agent account deleted) sends no frame: that agent's sockets close
with 1008 ``agent_not_found``; with ``"v": version`` (the host set the agent a new password,
whose version that is) the agent's sockets opened with a session of an older password version
close with 1008 ``session_revoked`` (those of a sign-in with the new password stay open).
``{"k": "signed_out", "s": session id}`` (an agent signed out) closes the sockets opened with
that session, on every node, with 1008 ``session_revoked``.

Frames describe state, not deltas: a lost event is repaired by the next one or by the
``hello`` snapshot a reconnecting page gets. **Presence** is the agent's lease: this node
renews the lease of every agent with a socket open here every ``lease / 3`` seconds, so a
refresh or a reconnect (a new socket within the lease) changes nothing; an agent whose sockets
all closed keeps the lease until it runs out, then the grace period, then the sweep re-queues
their conversations (:func:`agents.requeue_abandoned`). No aiohttp here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce.aio import check_cancelled, close_within
from livecommerce.errors import NotFound
from livecommerce.redis_clients import subscription_client
from livecommerce.support import agents

log = logging.getLogger("livecommerce.support.feed")
CHANNEL = "lc:support:feed"
SEND_QUEUE = 256  # frames waiting for one slow socket before it is closed (it reconnects)
RETRY_SECONDS = 1.0


@dataclass(eq=False)
class Seat:
    """One open agent socket on this node: frames to send go through ``outbox``."""

    agent_id: int
    host_id: int
    session_id: str | None = None  # the agent session the socket was opened with
    version: int | None = None  # that session's password version (``sv``)
    outbox: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE))
    # Set when the account was deleted (``agent_not_found``) or the session ended — signed out,
    # or a new password (``session_revoked``): close 1008 with it, the page signs out instead
    # of reconnecting.
    revoked: str | None = None

    def put_close(self, revoked: str | None = None) -> None:
        self.revoked = self.revoked or revoked
        with contextlib.suppress(asyncio.QueueEmpty):
            self.outbox.get_nowait()
        self.outbox.put_nowait(None)

    def put(self, frame: bytes) -> None:
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:  # too slow: close it; the page reconnects and gets a hello
            self.put_close()


def frame(kind: str, **data: Any) -> bytes:
    return orjson.dumps({"type": kind, **data}, default=_default)


class ClientFrame(msgspec.Struct):
    """A frame from the agent's page: any JSON object with a string ``type`` (other fields are
    ignored); ``ping`` is the only type there is."""

    type: str


_client_frame = msgspec.json.Decoder(ClientFrame)
CLIENT_TYPES = ("ping",)


def error_frame(code: str, message: str) -> bytes:
    """The ``error`` frame (docs/support.md): the socket stays open."""
    return frame("error", code=code, message=message)


def answer(data: str | bytes, *, binary: bool = False) -> bytes:
    """The answer to one frame from the agent's page, parsed as JSON (whitespace, key order and
    extra fields do not matter): ``pong`` to a ping, else an ``error`` frame — ``bad_json``,
    ``bad_message`` (not an object with a string ``type``), ``unknown_type`` or
    ``binary_not_supported``."""
    if binary:
        return error_frame("binary_not_supported", "send JSON text frames")
    try:
        kind = _client_frame.decode(data).type
    except msgspec.ValidationError:  # JSON, but not an object with a string type
        return error_frame("bad_message", "a frame is a JSON object with a string type")
    except msgspec.DecodeError:
        return error_frame("bad_json", "frames must be JSON objects")
    if kind == "ping":
        return frame("pong")
    return error_frame("unknown_type", f"unknown frame type (allowed: {', '.join(CLIENT_TYPES)})")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def conv_view(row: dict[str, Any]) -> dict[str, Any]:
    """A conversation as frames and the REST API show it (the openid is WeChat's id)."""
    return {k: row[k] for k in (
        "id", "openid", "state", "agent_id", "queued_at", "session_from", "last_goods_id",
        "updated_at",
    )}  # fmt: skip


def agent_view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "capacity", "active", "online", "online_until")}


class Feed:
    """This node's feed: local seats by shop, the Redis listener and the lease renewer."""

    def __init__(self, pool: asyncpg.Pool, redis: Redis, lease_seconds: float) -> None:
        self.pool, self.redis, self.lease = pool, redis, lease_seconds
        self.seats: dict[int, set[Seat]] = {}
        self.listening = asyncio.Event()

    # -- seats ---------------------------------------------------------------------------

    async def attach(self, seat: Seat) -> None:
        """Open a seat: the agent is online (lease renewed; queued work assigned) and gets a
        ``hello`` snapshot first. Unauthorized (``session_revoked``) when the host set a new
        password since the seat's session signed in: the seat is registered before that is
        read, so a change committed later reaches it as a ``revoked`` event."""
        self.seats.setdefault(seat.host_id, set()).add(seat)
        agent, assigned = await agents.presence(
            self.pool, seat.agent_id, True, self.lease, version=seat.version
        )
        seat.put(await self.hello(agent))
        await self.publish(seat.host_id, "changed", assigned)
        await self.publish(seat.host_id, "agents")

    def close_all(self) -> None:
        """Close every socket of this node (the server is stopping: pages reconnect)."""
        for shop in self.seats.values():
            for seat in shop:
                seat.put_close()

    def detach(self, seat: Seat) -> None:
        """Close a seat. The lease is *not* ended: a refresh reconnects within it."""
        shop = self.seats.get(seat.host_id)
        if shop is not None:
            shop.discard(seat)
            if not shop:
                del self.seats[seat.host_id]

    async def hello(self, agent: dict[str, Any]) -> bytes:
        host = agent["host_id"]
        return frame(
            "hello",
            agent=agent_view(agent),
            queue=[conv_view(c) for c in await agents.queue(self.pool, host)],
            mine=[conv_view(c) for c in await agents.held_by(self.pool, agent["id"])],
            agents=[agent_view(a) for a in await agents.list_for(self.pool, host)],
            lease_seconds=self.lease,
        )

    # -- publishing ----------------------------------------------------------------------

    async def publish(
        self, host_id: int | None, kind: str, conv_ids: Iterable[int] = (), *,
        inbox_id: int | None = None, reply_id: int | None = None, agent_id: int | None = None,
        version: int | None = None,
    ) -> None:  # fmt: skip
        """Tell every node's sockets of the shop (after the change committed). Best effort: a
        Redis failure is logged; the state is in PostgreSQL and the next hello repairs it (an
        ended session is refused from PostgreSQL's record, so its socket cannot reconnect)."""
        ids = list(conv_ids)
        if host_id is None or (kind == "changed" and not ids):
            return
        event = {
            "h": host_id, "k": kind, "c": ids, "i": inbox_id, "r": reply_id, "a": agent_id,
            "v": version,
        }  # fmt: skip
        try:
            await self.redis.publish(CHANNEL, orjson.dumps(event))
        except (RedisError, OSError) as exc:
            log.warning("support feed: publish failed (%s)", type(exc).__name__)

    async def publish_signed_out(self, session_id: str) -> None:
        """Close every node's sockets opened with the agent session ``session_id`` (it signed
        out). Best effort like :meth:`publish`: the session is refused anyway from PostgreSQL's
        record, so a reconnect of such a socket fails."""
        event = {"h": None, "k": "signed_out", "s": session_id}
        try:
            await self.redis.publish(CHANNEL, orjson.dumps(event))
        except (RedisError, OSError) as exc:
            log.warning("support feed: publish failed (%s)", type(exc).__name__)

    # -- this node's loops ---------------------------------------------------------------

    async def run(self) -> None:
        """Listen for events and renew local leases until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen(), name="support-feed-listen")
            group.create_task(self._renew(), name="support-feed-renew")

    async def _renew(self) -> None:
        while True:
            check_cancelled()
            await asyncio.sleep(self.lease / 3)
            ids = sorted({s.agent_id for shop in self.seats.values() for s in shop})
            try:
                await agents.renew(self.pool, ids, self.lease)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("support feed: lease renewal failed (%s)", type(exc).__name__)

    async def _listen(self) -> None:
        subscriber = subscription_client(self.redis)
        try:
            while True:
                check_cancelled()
                pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
                try:
                    await pubsub.subscribe(CHANNEL)
                    self.listening.set()
                    while True:
                        check_cancelled()  # a cancel redis-py swallowed: stop, not read again
                        msg = await pubsub.get_message(timeout=None)
                        if msg is not None and msg["type"] == "message":
                            await self._deliver_one(msg["data"])
                except (RedisError, OSError) as exc:
                    log.warning("support feed subscription lost (%s); reconnecting", exc)
                    self.listening.clear()
                    await asyncio.sleep(RETRY_SECONDS)
                finally:
                    await close_within(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]
        finally:
            await close_within(subscriber.aclose(), 1.0)

    async def _deliver_one(self, data: bytes) -> None:
        """One event from the channel; a malformed one is logged and skipped."""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("support feed: a malformed event was skipped")
            return
        if isinstance(event, dict):
            await self._deliver(event)

    async def _deliver(self, event: dict[str, Any]) -> None:
        if event.get("k") == "signed_out":  # an agent session ended: its sockets close now
            for shop in self.seats.values():
                for seat in list(shop):
                    if seat.session_id is not None and seat.session_id == event.get("s"):
                        seat.put_close(revoked="session_revoked")
            return
        host = event.get("h")
        seats = self.seats.get(host) if isinstance(host, int) else None
        if not seats:
            return
        if event.get("k") == "revoked":  # an account deleted, or a new password: close now
            version = event.get("v")
            for seat in list(seats):
                if seat.agent_id != event.get("a"):
                    continue
                if version is None:
                    seat.put_close(revoked="agent_not_found")
                elif seat.version is None or seat.version < version:  # an older password's
                    # (not a newer one's: two changes' events may arrive in either order)
                    seat.put_close(revoked="session_revoked")
            return
        try:
            frames = await self._frames(host, event)  # type: ignore[arg-type]
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("support feed: could not read state (%s)", type(exc).__name__)
            return
        for seat in list(seats):
            for f in frames:
                seat.put(f)

    async def _frames(self, host: int, event: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if event.get("k") == "message":
            msg = await self._message(event.get("i"), event.get("r"))
            for cid in event.get("c") or ():
                if msg is not None:
                    out.append(frame("message", conversation_id=cid, message=msg))
            return out
        if event.get("k") == "agents":  # someone came online or left
            return [await self._agents(host)]
        out.append(
            frame("queue", items=[conv_view(c) for c in await agents.queue(self.pool, host)])
        )
        for cid in event.get("c") or ():
            try:
                conv = await agents.conversation(self.pool, host, int(cid))
            except NotFound:  # gone to another shop (the admin): nothing to show here
                continue
            out.append(frame("conversation", conversation=conv_view(conv)))
        out.append(await self._agents(host))
        return out

    async def _agents(self, host: int) -> bytes:
        rows = await agents.list_for(self.pool, host)
        return frame("agents", items=[agent_view(a) for a in rows])

    async def _message(self, inbox_id: Any, reply_id: Any) -> dict[str, Any] | None:
        if isinstance(inbox_id, int):
            row = await self.pool.fetchrow(
                """SELECT 'buyer' AS sender, msg_type AS kind, content, 'received' AS state,
                          received_at AS at FROM support_inbox WHERE id = $1""",
                inbox_id,
            )
        elif isinstance(reply_id, int):
            row = await self.pool.fetchrow(
                """SELECT CASE WHEN kind = 'agent' THEN 'agent' ELSE 'bot' END AS sender, kind,
                          COALESCE(body -> 'text' ->> 'content', '') AS content, state,
                          created_at AS at FROM support_replies WHERE id = $1""",
                reply_id,
            )
        else:
            return None
        return dict(row) if row is not None else None
