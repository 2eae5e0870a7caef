"""HTTP: ``GET /api/rooms`` — a host's own rooms, or (anyone else) the live rooms."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model, Query, to
from livecommerce.api.types import Cursor
from livecommerce.auth.http import require_claims
from livecommerce.commerce import cursors
from livecommerce.errors import AppError
from livecommerce.rooms.listing import list_rooms
from livecommerce.rooms.routes import Room, RoomState

MAX_PAGE = 100


class RoomListQuery(Query):
    state: RoomState | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 20
    cursor: Cursor | None = None


class RoomPage(Model):
    items: list[Room]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page")]


def _host_of(call: Call[None, RoomListQuery]) -> int | None:
    """The caller's host id when it is a host (bearer token or console session), else None."""
    try:
        return require_claims(call.request, "host").host_id
    except AppError:
        return None


async def list_(call: Call[None, RoomListQuery]) -> RoomPage:
    """Rooms, newest first, in keyset pages.

    A host (token or console session) gets its own rooms in any ``state``; anyone else gets
    the live rooms only (asking for ``scheduled`` or ``ended`` finds none).
    """
    q = call.query
    host_id = _host_of(call)
    secret = call.app[keys.SETTINGS].secret
    scope = f"rooms:{host_id or 'public'}"
    after = cursors.decode(secret, scope, q.cursor, [q.state])
    items, next_id = await list_rooms(
        call.app[keys.PG_POOL], host_id=host_id, state=q.state, limit=q.limit, after_id=after
    )
    next_cursor = None if next_id is None else cursors.encode(secret, scope, next_id, [q.state])
    return to(RoomPage, {"items": items, "next_cursor": next_cursor})
