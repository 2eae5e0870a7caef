"""The viewer WebSocket endpoint: handshake, welcome/resume, and the viewer's messages.

``GET /ws?room=ID[&token=T][&last_seq=N][&epoch=E]`` (the token may also come as
``Authorization: Bearer``). See docs/protocol.md for every frame and close code.
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from livecommerce import keys
from livecommerce.auth.tokens import Claims, verify_token
from livecommerce.config import RoomsConfig
from livecommerce.errors import AppError, Unauthorized
from livecommerce.realtime import protocol as p
from livecommerce.realtime.broker import Snapshot
from livecommerce.realtime.hub import Viewer
from livecommerce.rooms.service import get_room

log = logging.getLogger("livecommerce.socket")
SUBSCRIBE_WAIT_SECONDS = 5.0


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def clean_text(text: str) -> str:
    """Comment text without control, format (bidi overrides, zero-width) or private-use chars."""
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    return " ".join(kept.split())


class Handshake(Exception):
    """The connection is refused after the upgrade: an error frame, then this close code."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code, self.code, self.message = close_code, code, message


def _int_param(query: Any, name: str, *, required: bool) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        if required:
            raise Handshake(p.CLOSE_BAD_REQUEST, "bad_request", f"{name} is required")
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise Handshake(
            p.CLOSE_BAD_REQUEST, "bad_request", f"{name} must be a non-negative integer"
        )
    return int(raw)


def _claims(request: web.Request) -> Claims:
    token = request.query.get("token", "")
    if not token:
        scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else ""
    if not token:
        raise Handshake(p.CLOSE_UNAUTHORIZED, "missing_token", "a token is required")
    try:
        return verify_token(request.app[keys.SETTINGS].secret, token)
    except Unauthorized as exc:
        raise Handshake(p.CLOSE_UNAUTHORIZED, exc.code, exc.message) from None


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    cfg = app[keys.SETTINGS].rooms
    ws = web.WebSocketResponse(
        heartbeat=cfg.heartbeat_seconds, max_msg_size=cfg.max_frame_bytes, compress=False
    )
    if not ws.can_prepare(request).ok:
        raise AppError("this endpoint speaks WebSocket only", code="websocket_expected")
    await ws.prepare(request)
    hub = app[keys.HUB]
    sockets = app[keys.WEBSOCKETS].sockets
    sockets.add(ws)
    viewer: Viewer | None = None
    admitted: tuple[str, str] | None = None
    try:
        room_id = _int_param(request.query, "room", required=True)
        last_seq = _int_param(request.query, "last_seq", required=False)
        epoch = request.query.get("epoch") or None
        if epoch is not None and len(epoch) > 32:
            raise Handshake(p.CLOSE_BAD_REQUEST, "bad_request", "epoch is too long")
        assert room_id is not None
        claims = _claims(request)
        ip = request.remote or "?"
        identity = f"{claims.kind}:{claims.subject}"
        if not hub.admit(ip, identity, cfg.max_connections_per_ip, cfg.max_connections_per_user):
            raise Handshake(
                p.CLOSE_TOO_MANY_CONNECTIONS, "too_many_connections", "too many connections"
            )
        admitted = (ip, identity)
        # No viewer joins before this node's subscription is live, or it could miss frames.
        try:
            await asyncio.wait_for(app[keys.NODE].subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)
        except TimeoutError:
            raise Handshake(p.CLOSE_RECONNECT, "unavailable", "node not ready, reconnect") from None
        viewer = Viewer(ws, request.transport, room_id, ip, identity)
        hub.begin_join(viewer)
        snap = await _snapshot(app, room_id, last_seq)
        room = orjson.loads(snap.state["room"])
        if room["state"] == "ended":
            raise Handshake(p.CLOSE_ROOM_ENDED, "room_ended", "the live has ended")
        same_epoch = epoch is None or epoch == snap.state.get("epoch", b"").decode()
        resumed = last_seq is not None and snap.complete and same_epoch
        kind = "resync" if last_seq is not None and not resumed else "welcome"
        if last_seq is not None:
            app[keys.METRICS].resumes.labels("hit" if resumed else "miss").inc()
        viewer.write(p.ws_text_frame(p.encode(_welcome(kind, snap, room, resumed))))
        hub.finish_join(viewer, snap.seq, snap.missed if resumed else [])
        await _receive(request, ws, viewer, claims, cfg)
    except Handshake as exc:
        if not ws.closed:
            await ws.send_str(p.error_frame(exc.code, exc.message).decode())
            await ws.close(code=exc.close_code, message=exc.message.encode()[:120])
    except (RedisError, OSError) as exc:
        log.warning("socket closed on backend error: %s", exc)
        if not ws.closed:
            await ws.close(code=p.CLOSE_RECONNECT, message=b"backend unavailable")
    finally:
        if viewer is not None:
            hub.leave(viewer)
        if admitted is not None:
            hub.release(*admitted)
        sockets.discard(ws)
    return ws


async def _snapshot(app: web.Application, room_id: int, last_seq: int | None) -> Snapshot:
    """The room snapshot; rebuilds the cached room info from PostgreSQL when Redis lacks it."""
    broker = app[keys.BROKER]
    snap = await broker.snapshot(room_id, last_seq)
    if "room" not in snap.state:
        info = await get_room(app[keys.PG_POOL], room_id)
        if info is None:
            raise Handshake(p.CLOSE_ROOM_NOT_FOUND, "room_not_found", "no such room")
        await broker.set_room_info(room_id, info)
        snap = await broker.snapshot(room_id, last_seq)
    return snap


def _welcome(kind: str, snap: Snapshot, room: dict[str, Any], resumed: bool) -> dict[str, Any]:
    bubble = None
    raw = snap.state.get("bubble")
    if raw:
        frame = orjson.loads(raw)
        if frame["ts"] + frame.get("show_seconds", 0) * 1000 > time.time() * 1000:
            bubble = frame
    return {
        "type": kind,
        "seq": snap.seq,
        "epoch": snap.state.get("epoch", b"").decode(),
        "room": room,
        "bubble": bubble,
        "viewers": int(snap.state.get("viewers", b"0")),
        "likes": int(snap.state.get("likes", b"0")),
        "resumed": resumed,
        "missed": len(snap.missed) if resumed else 0,
    }


async def _receive(
    request: web.Request,
    ws: web.WebSocketResponse,
    viewer: Viewer,
    claims: Claims,
    cfg: RoomsConfig,
) -> None:
    bucket = TokenBucket(cfg.messages_per_second, max(1.0, cfg.messages_per_second * 2))
    state = {"first": True, "last_comment": 0.0}
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            await ws.send_str(
                p.error_frame("binary_not_supported", "send JSON text frames").decode()
            )
            await ws.close(code=p.CLOSE_UNSUPPORTED_DATA, message=b"binary frames are not accepted")
            return
        if msg.type != WSMsgType.TEXT:
            return
        if not bucket.take():
            await ws.send_str(p.error_frame("rate_limited", "slow down").decode())
            continue
        reply = await _handle(request, viewer, claims, cfg, msg.data, state)
        state["first"] = False
        if reply is not None:
            await ws.send_str(p.encode(reply).decode())


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


async def _handle(
    request: web.Request,
    viewer: Viewer,
    claims: Claims,
    cfg: RoomsConfig,
    text: str,
    state: dict[str, Any],
) -> dict[str, Any] | None:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _error("bad_json", "frames must be JSON objects")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return _error("bad_message", "a message is a JSON object with a string type")
    kind = data["type"]
    if kind not in p.CLIENT_TYPES:
        return _error(
            "unknown_type", f"unknown message type (allowed: {', '.join(sorted(p.CLIENT_TYPES))})"
        )
    app = request.app
    hub = app[keys.HUB]
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
            return _error("invalid", f"count must be an integer 1..{cfg.like_max_per_message}")
        room = hub.rooms.get(viewer.room_id)
        if room is not None:
            room.likes += count
        return None
    if kind == "comment":
        raw = data.get("text")
        if not isinstance(raw, str):
            return _error("invalid", "text must be a string")
        cleaned = clean_text(raw)
        if not cleaned:
            return _error("invalid", "text is empty")
        if len(cleaned) > cfg.comment_max_chars:
            return _error("invalid", f"text is longer than {cfg.comment_max_chars} characters")
        now = time.monotonic()
        if now - state["last_comment"] < cfg.comment_min_interval_seconds:
            return _error("rate_limited", "one comment per interval")
        state["last_comment"] = now
        author = {
            "kind": claims.kind,
            "id": claims.subject[-8:] if claims.kind == "viewer" else claims.subject,
        }
        await app[keys.BROKER].publish(
            viewer.room_id, {"type": "comment", "user": author, "text": cleaned}
        )
        return None
    # resume: only as the first message, before any live frame reached this connection.
    last = data.get("last_seq")
    if not isinstance(last, int) or isinstance(last, bool) or last < 0:
        return _error("invalid", "last_seq must be a non-negative integer")
    room = hub.rooms.get(viewer.room_id)
    since = viewer.since
    if not state["first"] or room is None or since is None or (room.last_seq or 0) > since:
        return _error("resume_too_late", "reconnect with ?last_seq=N to resume")
    return await _resume(app, viewer, last, since)


async def _resume(
    app: web.Application, viewer: Viewer, last: int, since: int
) -> dict[str, Any] | None:
    hub, broker = app[keys.HUB], app[keys.BROKER]
    hub.rejoin(viewer)
    frames = await broker.history_between(viewer.room_id, last, since) if last < since else []
    if last <= since and [s for s, _ in frames] == list(range(last + 1, since + 1)):
        app[keys.METRICS].resumes.labels("hit").inc()
        hub.finish_join(viewer, since, [f for _, f in frames])
        return None
    app[keys.METRICS].resumes.labels("miss").inc()
    snap = await _snapshot(app, viewer.room_id, None)
    room = orjson.loads(snap.state["room"])
    viewer.write(p.ws_text_frame(p.encode(_welcome("resync", snap, room, False))))
    hub.finish_join(viewer, snap.seq, [])
    return None
