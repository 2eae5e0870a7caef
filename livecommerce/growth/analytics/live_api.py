"""HTTP: ``POST /api/host/rooms/{id}/socket-token`` — the console's token for its room socket.

The console signs in with an HttpOnly session cookie, so its script cannot read the host token;
it asks for this short-lived host token and joins the room's WebSocket with it. A socket joined
with the room owner's host token gets the ``stats`` frames (live_stats.py, docs/protocol.md);
otherwise it is an ordinary viewer connection.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model, Reply
from livecommerce.auth.tokens import issue_token
from livecommerce.growth.analytics import reports

SOCKET_TOKEN_TTL_SECONDS = 900  # the console fetches a fresh one when the socket says 4401


class SocketToken(Model):
    """A host token for joining the room's WebSocket as its console."""

    token: str
    kind: Literal["host"]
    expires_in: Annotated[int, Meta(description="Seconds until the token expires")]


async def socket_token(call: Call[None, None]) -> Reply[SocketToken]:
    """A short-lived host token for the room's socket (`GET /ws?room=ID&token=…`).

    The socket joined with it gets the room's `stats` frames every second (docs/protocol.md).
    404 `room_not_found` unless the room is the caller's."""
    room_id = call.id()
    async with call.app[keys.PG_POOL].acquire() as conn:
        await reports.host_room(conn, call.host_id, room_id)
    settings = call.app[keys.SETTINGS]
    ttl = min(SOCKET_TOKEN_TTL_SECONDS, settings.security.host_token_ttl_seconds)
    token = issue_token(settings.secret, "host", call.host_id, ttl)
    return Reply(SocketToken(token=token, kind="host", expires_in=ttl), status=201)
