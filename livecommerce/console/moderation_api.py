"""HTTP: the host deletes a comment for everyone in its room (console live panel)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model
from livecommerce.console import moderation


class CommentDeleted(Model):
    seq: Annotated[int, Meta(description="The room sequence number of the comment_delete frame")]
    checked: Annotated[
        bool,
        Meta(
            description="False: the comment is older than the room's history keeps "
            "(`rooms.history_max_messages`, `rooms.history_max_age_seconds`), so it could not "
            "be checked to be a comment; the deletion was published all the same"
        ),
    ]
    repeated: Annotated[
        bool,
        Meta(
            description="True: the comment was deleted before; `seq` is that frame's and "
            "nothing was published now"
        ),
    ]


async def delete_comment(call: Call[None, None]) -> CommentDeleted:
    """Delete a comment for everyone: viewers get ``comment_delete`` with the comment's seq.

    ``{seq}`` is the ``seq`` of the comment's frame. Deleting it again answers the first
    deletion (``repeated``). 404 ``room_not_found`` for another host's room, 404
    ``comment_not_found`` for a seq that is not a comment of the room (another kind of frame,
    or not published yet).
    """
    app = call.app
    deletion = await moderation.delete_comment(
        app[keys.PG_POOL], app[keys.BROKER], call.host_id, call.id("room_id"), call.id("seq")
    )
    return CommentDeleted(seq=deletion.seq, checked=deletion.checked, repeated=deletion.repeated)
