"""HTTP: the host deletes a comment for everyone in its room (console live panel)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model
from livecommerce.console import moderation


class CommentDeleted(Model):
    seq: Annotated[int, Meta(description="The room sequence number of the comment_delete frame")]


async def delete_comment(call: Call[None, None]) -> CommentDeleted:
    """Delete a comment for everyone: viewers get ``comment_delete`` with the comment's seq.

    ``{seq}`` is the ``seq`` of the comment's frame. 404 for another host's room.
    """
    app = call.app
    published = await moderation.delete_comment(
        app[keys.PG_POOL], app[keys.BROKER], call.host_id, call.id("room_id"), call.id("seq")
    )
    return CommentDeleted(seq=published.seq)
