"""HTTP: the host deletes a comment for everyone in its room (console live panel)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model
from livecommerce.api.models import Query
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


class CommentEpoch(Query):
    epoch: (
        Annotated[
            str,
            Meta(
                max_length=64,
                description="The room stream's `epoch` the comment was seen in (the socket's "
                "`welcome`/`resync`): another one is 404 `comment_not_found`, as a new epoch "
                "restarts the seqs and `{seq}` may be another comment there",
            ),
        ]
        | None
    ) = None


async def delete_comment(call: Call[None, CommentEpoch]) -> CommentDeleted:
    """Delete a comment for everyone: viewers get ``comment_delete`` with the comment's seq.

    ``{seq}`` is the ``seq`` of the comment's frame. Deleting it again answers the first
    deletion (``repeated``). 404 ``room_not_found`` for another host's room, 404
    ``comment_not_found`` for a seq that is not a comment of the room (another kind of frame,
    or not published yet, or ``epoch`` given and no longer the room stream's).
    """
    app = call.app
    epoch = call.query.epoch or ""
    deletion = await moderation.delete_comment(
        app[keys.PG_POOL], app[keys.BROKER], call.host_id, call.id("room_id"), call.id("seq"),
        epoch,
    )  # fmt: skip
    return CommentDeleted(seq=deletion.seq, checked=deletion.checked, repeated=deletion.repeated)
