"""HTTP: ``GET /api/agent/feed`` — the agent's WebSocket (frames in docs/support.md).

Authenticated by the agent session cookie (what a browser sends with a WebSocket) or an agent
bearer token; a browser's ``Origin``, when sent, must be this server (no cross-site socket
riding the cookie). The first frame is ``hello`` (the agent, the shop's queue, the agent's
conversations, the shop's agents); then ``queue`` / ``conversation`` / ``agents`` /
``message`` frames as things change. Every frame the page sends is parsed as JSON and answered:
``pong`` to ``{"type": "ping"}``, an ``error`` frame to anything else (``feed.answer``). While
the socket is open this node renews the agent's presence lease; closing it (a refresh) does not
end the lease.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from livecommerce import keys
from livecommerce.aio import check_cancelled
from livecommerce.api.contract import AGENT
from livecommerce.auth.http import require_claims
from livecommerce.errors import AppError, Forbidden
from livecommerce.support import agents
from livecommerce.support.feed import Seat, answer

HEARTBEAT_SECONDS = 20.0


def _same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        raise Forbidden("a socket from another origin", code="csrf_failed")


async def feed(request: web.Request) -> web.StreamResponse:
    """The agent's real-time feed (WebSocket). 400 ``websocket_expected`` for plain HTTP,
    401 no/bad session, 403 another origin or not an agent, 404 the agent account is gone."""
    claims = require_claims(request, *AGENT)
    _same_origin(request)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=4096)
    if not ws.can_prepare(request).ok:
        raise AppError("this endpoint speaks WebSocket only", code="websocket_expected")
    assert claims.agent_id is not None
    support = request.app[keys.SUPPORT]
    agent = await agents.get(request.app[keys.PG_POOL], claims.agent_id)
    await ws.prepare(request)
    seat = Seat(
        agent_id=agent["id"], host_id=agent["host_id"], session_id=claims.session_id,
        version=claims.session,
    )  # fmt: skip
    writer = asyncio.create_task(_write(ws, seat), name="agent-feed-writer")
    try:
        try:
            await support.feed.attach(seat)
        except (OSError, asyncpg.PostgresError, RedisError):  # a backend down: retry later
            await ws.close(code=1012, message=b"unavailable; reconnect")
            return ws
        except AppError as exc:  # the account went away, or a new password, meanwhile
            await ws.close(code=1008, message=exc.code.encode()[:100])
            return ws
        async for msg in ws:  # each frame answered, in order: pong, or an error frame
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                seat.put(answer(msg.data, binary=msg.type == WSMsgType.BINARY))
    finally:
        support.feed.detach(seat)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await ws.close()
    return ws


async def _write(ws: web.WebSocketResponse, seat: Seat) -> None:
    while True:
        check_cancelled()
        data = await seat.outbox.get()
        if data is None and seat.revoked:  # account deleted, or signed out: do not reconnect
            await ws.close(code=1008, message=seat.revoked.encode())
            return
        if data is None:  # too slow, or the server is stopping: the page reconnects
            await ws.close(code=1012, message=b"reconnect")
            return
        await ws.send_str(data.decode())
