"""The viewer WebSocket endpoint: handshake, welcome/resume, and the viewer's messages.

``GET /ws?room=ID[&token=T][&last_seq=N][&epoch=E]`` (the token may also come as
``Authorization: Bearer``). See docs/protocol.md for every frame and close code.

The upgrade is recognised in front of aiohttp (``realtime/site.py``); from then on a viewer is
one :class:`~livecommerce.realtime.conn.Conn`. The join runs in a short task (admission, the
node subscription, the room snapshot, welcome); after it, messages are handled synchronously in
the connection's ``data_received``, and only a comment publish or a ``resume`` runs a task (a
``track`` frame's checks and answer are in ``realtime/track.py``; storing its events is a task).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import msgspec
import orjson

from livecommerce.auth.tokens import Claims, verify_token
from livecommerce.config import RoomsConfig
from livecommerce.errors import Unauthorized
from livecommerce.growth.analytics.live import Tracker
from livecommerce.metrics import Metrics
from livecommerce.outage import BACKEND_ERRORS, NAMES, OutageLog, unavailable_backend
from livecommerce.realtime import protocol as p
from livecommerce.realtime import variants
from livecommerce.realtime.broker import Broker, Snapshot
from livecommerce.realtime.conn import JOINING, OPEN, Conn, Sockets
from livecommerce.realtime.frames import accept_key
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.node import Node
from livecommerce.realtime.protocol import Reply, error_reply
from livecommerce.realtime.snapshot import (
    RoomNotFound,
    load_snapshot,
    snapshot_epoch,
    welcome_body,
)
from livecommerce.realtime.text import clean_text
from livecommerce.realtime.track import TRACK, TRACK_HEAD, track_frame
from livecommerce.realtime.upgrade import Upgrade, switching_protocols, ws_query

log = logging.getLogger("livecommerce.socket")
SUBSCRIBE_WAIT_SECONDS = 5.0
JOIN_TIMEOUT_SECONDS = 30.0  # a join stuck on a backend is told to reconnect (1012)

# Comment moderation (livecommerce/moderation): given the connection, the author (the comment
# frame's ``user``), the cleaned text and the client's ``ref``, publishes/holds/refuses it.
CommentHook = Callable[[Conn, dict[str, str], str, Any], Coroutine[Any, Any, Reply]]


class Handshake(Exception):
    """The connection is refused after the upgrade: an error frame, then this close code."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code, self.code, self.message = close_code, code, message


class Endpoint:
    """This node's viewer endpoint: what every :class:`Conn` calls into."""

    def __init__(
        self,
        *,
        cfg: RoomsConfig,
        secret: str,
        hub: Hub,
        broker: Broker,
        node: Node,
        metrics: Metrics,
        pool: asyncpg.Pool,
        sockets: Sockets,
        outages: OutageLog | None = None,
    ) -> None:
        self.cfg, self.secret = cfg, secret
        self.outages = outages
        self.hub, self.broker, self.node, self.metrics, self.pool = hub, broker, node, metrics, pool
        self.sockets = sockets
        self.max_frame = cfg.max_frame_bytes
        self.rate = cfg.messages_per_second
        self.burst = max(1.0, cfg.messages_per_second * 2)
        # Analytics (growth/analytics/live.py): stores a `track` frame's events; None: refused.
        self.tracker: Tracker | None = None
        # The room owner's console sockets on this node, by room: they alone get the `stats`
        # frames (growth/analytics/live_stats.py). A host token for another room is a viewer.
        self.host_conns: dict[int, set[Conn]] = {}
        # Comment moderation (moderation/setup.py); None: comments are published as they come.
        self.moderator: CommentHook | None = None

        # Bubble experiments: a user's openid and sticky assignments, once per connection.
        self.sticky = variants.StickyLoader(pool)

    # ------------------------------------------------------------------ connection lifecycle

    def upgrade(self, transport: asyncio.Transport, up: Upgrade, rest: bytes) -> Conn:
        """Take over ``transport`` (its request head was a valid upgrade to /ws): answer 101
        and start the join. ``rest`` is whatever the client sent after the head."""
        peer = transport.get_extra_info("peername")
        conn = Conn(self, transport, str(peer[0]) if peer else "?")
        transport.set_protocol(conn)
        transport.write(switching_protocols(accept_key(up.key)))
        self.metrics.http_requests.labels("GET", "/ws", "101").inc()
        self.sockets.add(conn)
        conn.buf = rest
        conn.run(self._join(conn, up))
        return conn

    def detach(self, conn: Conn) -> None:
        """The viewer leaves its room and its admission slot (idempotent)."""
        self.hub.leave(conn)
        hosts = self.host_conns.get(conn.room_id)
        if hosts is not None:
            hosts.discard(conn)
            if not hosts:
                del self.host_conns[conn.room_id]
        if conn.identity:
            self.hub.release(conn.ip, conn.identity)
            conn.identity = ""

    def forget(self, conn: Conn) -> None:
        """The transport is gone."""
        self.detach(conn)
        self.sockets.discard(conn)

    def evict_slow(self, conn: Conn) -> None:
        self.hub.evict(conn, p.CLOSE_TOO_SLOW, "too slow: reconnect and resume")

    # ------------------------------------------------------------------ join

    def _claims(self, up: Upgrade) -> Claims:
        token = up.query.get("token", "")
        if not token:
            scheme, _, rest = up.authorization.partition(" ")
            token = rest.strip() if scheme.lower() == "bearer" else ""
        if not token:
            raise Handshake(p.CLOSE_UNAUTHORIZED, "missing_token", "a token is required")
        try:
            claims = verify_token(self.secret, token)
        except Unauthorized as exc:
            raise Handshake(p.CLOSE_UNAUTHORIZED, exc.code, exc.message) from None
        if claims.kind not in p.VIEWER_KINDS:
            raise Handshake(
                p.CLOSE_UNAUTHORIZED, "wrong_role",
                f"the room socket takes a user, viewer or host token (not {claims.kind})",
            )  # fmt: skip
        if claims.session is not None or claims.session_id is not None:
            # A console session's token (its cookie): whether it ended is checked on /api/
            # only (console/session_guard.py), so a copy kept after signing out would still
            # join as the room's host. The console joins with its socket token instead.
            raise Handshake(
                p.CLOSE_UNAUTHORIZED, "wrong_role",
                "the room socket takes the console's socket token "
                "(POST /api/host/rooms/{id}/socket-token), not a console session's",
            )  # fmt: skip
        return claims

    async def _join(self, conn: Conn, up: Upgrade) -> None:
        try:
            async with asyncio.timeout(JOIN_TIMEOUT_SECONDS):
                await self._join_steps(conn, up)
        except Handshake as exc:
            conn.refuse(exc.close_code, exc.code, exc.message)
        except BACKEND_ERRORS as exc:  # TimeoutError (JOIN_TIMEOUT_SECONDS) is an OSError
            self._backend_failed(conn, exc)

    def _backend_failed(self, conn: Conn, exc: Exception) -> None:
        """A join or message could not reach PostgreSQL/Redis: an ``unavailable`` error frame,
        then close 1012 (reconnect with backoff). An outage is logged once, not per viewer."""
        name = self._outage(exc, "socket closed on backend error")
        conn.refuse(p.CLOSE_RECONNECT, "unavailable", f"{name} is unavailable; reconnect")

    def _outage(self, exc: Exception, what: str) -> str:
        """Record a backend failure (an outage is logged once, else ``what``); its name."""
        backend = unavailable_backend(exc)
        if backend is not None and self.outages is not None:
            self.outages.failed(backend, exc)
        else:
            log.warning("%s: %r", what, exc)
        return NAMES.get(backend or "", "a backend")

    async def _join_steps(self, conn: Conn, up: Upgrade) -> None:
        cfg, hub = self.cfg, self.hub
        try:
            query = ws_query(up.query)
        except msgspec.ValidationError as exc:
            raise Handshake(p.CLOSE_BAD_REQUEST, "bad_request", str(exc)) from None
        room_id, last_seq, epoch = query.room_id, query.last_seq_number, query.epoch
        claims = self._claims(up)
        identity = f"{claims.kind}:{claims.subject}"
        if not hub.admit(
            conn.ip, identity, cfg.max_connections_per_ip, cfg.max_connections_per_user
        ):
            raise Handshake(
                p.CLOSE_TOO_MANY_CONNECTIONS, "too_many_connections", "too many connections"
            )
        conn.identity = identity
        conn.ab = await self.sticky.load(claims)
        # No viewer joins before this node's subscription is live, or it could miss frames.
        try:
            async with asyncio.timeout(SUBSCRIBE_WAIT_SECONDS):
                await self.node.subscribed.wait()
        except TimeoutError:
            raise Handshake(p.CLOSE_RECONNECT, "unavailable", "node not ready, reconnect") from None
        if conn.state != JOINING:
            return
        conn.room_id = room_id
        local = hub.begin_join(conn)
        await self.node.room_ready(room_id)  # cluster: the room's shard subscription (shards.py)
        snap, room = await self._snapshot(room_id, last_seq)
        if room["state"] == "ended":
            raise Handshake(p.CLOSE_ROOM_ENDED, "room_ended", "the live has ended")
        if conn.state != JOINING:
            return  # closed meanwhile (peer gone, shutdown): it has left the hub already
        current = snapshot_epoch(snap)
        if local.epoch is None:
            local.epoch = current
        elif local.epoch != current:
            # The room's stream was reset around this snapshot and this node has not yet
            # resynced its viewers (or this snapshot is the older one): start over.
            raise Handshake(p.CLOSE_RECONNECT, "unavailable", "room stream reset, reconnect")
        # A resume without an epoch is not trusted: the same seq may mean another frame.
        resumed = last_seq is not None and snap.complete and epoch == current
        kind = "resync" if last_seq is not None and not resumed else "welcome"
        if last_seq is not None:
            self.metrics.resumes.labels("hit" if resumed else "miss").inc()
        body = welcome_body(kind, snap, room, resumed)
        variants.personal_bubble(hub, room_id, conn, body)
        conn.write(p.ws_text_frame(p.encode(body)))
        hub.finish_join(conn, snap.seq, snap.missed if resumed else [])
        conn.state = OPEN
        if claims.kind == "host" and room.get("host_id") == claims.host_id:
            self.host_conns.setdefault(room_id, set()).add(conn)

    async def _snapshot(
        self, room_id: int, last_seq: int | None
    ) -> tuple[Snapshot, dict[str, Any]]:
        """The room snapshot and info (rebuilt from PostgreSQL when Redis lacks it)."""
        try:
            return await load_snapshot(self.broker, self.pool, room_id, last_seq)
        except RoomNotFound:
            raise Handshake(p.CLOSE_ROOM_NOT_FOUND, "room_not_found", "no such room") from None

    # ------------------------------------------------------------------ messages

    def on_text(self, conn: Conn, text: str) -> None:
        """One complete text message from an open viewer."""
        if not conn.take_token():
            conn.send(p.error_frame("rate_limited", "slow down"))
            return
        reply = self._handle(conn, text)
        conn.first = False
        if isinstance(reply, dict):
            conn.send(p.encode(reply))
        elif reply is not None:
            conn.run(self._later(conn, reply))

    async def _later(self, conn: Conn, work: Coroutine[Any, Any, Reply]) -> None:
        """A message that must await Redis (comment, resume), as the connection's task."""
        try:
            reply = await work
        except Handshake as exc:
            conn.refuse(exc.close_code, exc.code, exc.message)
            return
        except BACKEND_ERRORS as exc:
            self._backend_failed(conn, exc)
            return
        if reply is not None:
            conn.send(p.encode(reply))

    def _handle(self, conn: Conn, text: str) -> Reply | Coroutine[Any, Any, Reply]:
        if TRACK in text:  # likely a track frame: read without its events (the tracker does)
            try:
                head = TRACK_HEAD.decode(text)
            except (msgspec.DecodeError, RecursionError):
                head = None  # judged the general way below
            if head is not None and head.type == "track":
                return track_frame(
                    conn.identity, self.tracker, head.events, head.offset_ms, head.ref, text,
                    self._outage,
                )  # fmt: skip
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return error_reply("bad_json", "frames must be JSON objects")
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return error_reply("bad_message", "a message is a JSON object with a string type")
        kind = data["type"]
        if kind not in p.CLIENT_TYPES:
            return error_reply(
                "unknown_type",
                f"unknown message type (allowed: {', '.join(sorted(p.CLIENT_TYPES))})",
            )
        cfg = self.cfg
        if kind == "ping":
            t = data.get("t")
            return {
                "type": "pong",
                "t": t if isinstance(t, (int, float)) and not isinstance(t, bool) else None,
            }
        if kind == "like":
            count = data.get("count", 1)
            if (
                not isinstance(count, int)
                or isinstance(count, bool)
                or not 1 <= count <= cfg.like_max_per_message
            ):
                return error_reply(
                    "invalid", f"count must be an integer 1..{cfg.like_max_per_message}"
                )
            room = self.hub.rooms.get(conn.room_id)
            if room is not None:
                room.likes += count
            return None
        if kind == "comment":
            return self._comment(conn, data.get("text"), data.get("ref"))
        if kind == "track":
            return track_frame(
                conn.identity, self.tracker, data.get("events"), data.get("offset_ms", 0),
                data.get("ref"), text, self._outage,
            )  # fmt: skip
        # resume: only as the first message, before any live frame reached this connection.
        last = data.get("last_seq")
        if not isinstance(last, int) or isinstance(last, bool) or last < 0:
            return error_reply("invalid", "last_seq must be a non-negative integer")
        epoch = data.get("epoch")
        if epoch is not None and not isinstance(epoch, str):
            return error_reply("invalid", "epoch must be a string")
        room = self.hub.rooms.get(conn.room_id)
        since = conn.since
        if not conn.first or room is None or since is None or (room.last_seq or 0) > since:
            return error_reply("resume_too_late", "reconnect with ?last_seq=N to resume")
        # Without the epoch (or with another one) the seqs cannot be trusted: resync.
        return self._resume(conn, last, since, trusted=epoch is not None and epoch == room.epoch)

    def _comment(
        self, conn: Conn, raw: object, ref: object = None
    ) -> Reply | Coroutine[Any, Any, Reply]:
        cfg = self.cfg
        if ref is not None and not (isinstance(ref, str) and len(ref) <= 64):
            return error_reply("invalid", "ref must be a string of at most 64 characters")
        if not isinstance(raw, str):
            return error_reply("invalid", "text must be a string", ref)
        cleaned = clean_text(raw)
        if not cleaned:
            return error_reply("invalid", "text is empty", ref)
        if len(cleaned) > cfg.comment_max_chars:
            return error_reply(
                "invalid", f"text is longer than {cfg.comment_max_chars} characters", ref
            )
        now = time.monotonic()
        if now - conn.last_comment < cfg.comment_min_interval_seconds:
            return error_reply("rate_limited", "one comment per interval", ref)
        conn.last_comment = now
        kind, _, subject = conn.identity.partition(":")
        author = {"kind": kind, "id": subject[-8:] if kind == "viewer" else subject}
        if self.moderator is not None:
            return self.moderator(conn, author, cleaned, ref)
        return self._publish_comment(conn.room_id, author, cleaned)

    async def _publish_comment(self, room_id: int, author: dict[str, str], text: str) -> Reply:
        await self.broker.publish(room_id, {"type": "comment", "user": author, "text": text})
        return None

    async def _resume(self, conn: Conn, last: int, since: int, *, trusted: bool) -> Reply:
        hub, broker = self.hub, self.broker
        hub.rejoin(conn)
        frames = (
            await broker.history_between(conn.room_id, last, since)
            if trusted and last < since
            else []
        )
        if conn.state != OPEN:
            return None
        complete = [s for s, _ in frames] == list(range(last + 1, since + 1))
        if trusted and last <= since and complete:
            self.metrics.resumes.labels("hit").inc()
            hub.finish_join(conn, since, [f for _, f in frames])
            return None
        self.metrics.resumes.labels("miss").inc()
        snap, room = await self._snapshot(conn.room_id, None)
        if conn.state != OPEN:
            return None
        body = welcome_body("resync", snap, room, False)
        variants.personal_bubble(hub, conn.room_id, conn, body)
        conn.write(p.ws_text_frame(p.encode(body)))
        hub.finish_join(conn, snap.seq, [])
        return None
