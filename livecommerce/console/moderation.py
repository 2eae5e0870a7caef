"""Comment moderation by the room's host: delete a comment for everyone. No aiohttp here.

A deletion is a room frame ``{"type": "comment_delete", "comment_seq": N}`` (sequenced like
every room frame, so a resuming viewer gets it too); clients remove the comment whose frame had
seq N. Only a comment is deleted, once: the room's history in Redis is checked, atomically with
the publish (``lua/comment_delete.lua``, :meth:`Broker.delete_comment`). Mutes, the room mute,
blocked words and held comments live in :mod:`livecommerce.moderation`.
"""

from __future__ import annotations

import asyncpg

from livecommerce.errors import NotFound
from livecommerce.realtime.broker import Broker, CommentDeletion
from livecommerce.rooms.service import owned_room


async def delete_comment(
    pool: asyncpg.Pool, broker: Broker, host_id: int, room_id: int, comment_seq: int,
    epoch: str = "",
) -> CommentDeletion:  # fmt: skip
    """Delete the comment whose frame has ``comment_seq`` in the host's room for everyone.

    Deleting it again publishes nothing and answers the first deletion (``repeated``) while
    that is still in the room's history. A seq older than the history keeps cannot be checked:
    its deletion is published (``checked`` false) — clients may still show the comment.

    Raises NotFound: ``room_not_found`` for a room that is not the host's,
    ``comment_not_found`` for a seq that is not a comment of the room (another kind of frame,
    or not published yet, or ``epoch`` given and not the room stream's: its seqs restarted)."""
    async with pool.acquire() as conn:
        await owned_room(conn, host_id, room_id)
    deletion = await broker.delete_comment(room_id, comment_seq, epoch)
    if deletion is None:
        raise NotFound(f"no comment with seq {comment_seq} in this room", code="comment_not_found")
    return deletion
