"""Comment moderation by the room's host: delete a comment for everyone. No aiohttp here.

A deletion is a room frame ``{"type": "comment_delete", "comment_seq": N}`` (sequenced like
every room frame, so a resuming viewer gets it too); clients remove the comment whose frame had
seq N. Mutes, the room mute, blocked words and held comments live in
:mod:`livecommerce.moderation`.
"""

from __future__ import annotations

import asyncpg

from livecommerce.realtime.broker import Broker, Published
from livecommerce.rooms.service import owned_room


async def delete_comment(
    pool: asyncpg.Pool, broker: Broker, host_id: int, room_id: int, comment_seq: int
) -> Published:
    """Publish the deletion of the comment with ``comment_seq`` in the host's room.

    Raises NotFound (``room_not_found``) for a room that is not the host's."""
    async with pool.acquire() as conn:
        await owned_room(conn, host_id, room_id)
    return await broker.publish(room_id, {"type": "comment_delete", "comment_seq": comment_seq})
