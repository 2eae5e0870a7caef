"""The viewer socket's ``track`` frame: analytics events over the socket, answered by ``tracked``.

``{"type":"track","events":[…],"offset_ms":N,"ref":"…"}`` (docs/protocol.md, "Analytics over
the socket"). :meth:`Endpoint._handle <livecommerce.realtime.endpoint.Endpoint._handle>` reads a
likely track frame with :data:`TRACK_HEAD` (its events left unread, as :class:`msgspec.Raw`),
then :func:`track_frame` checks it and :func:`tracked` stores its events (the tracker decodes
them once, typed) and answers.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from livecommerce.growth.analytics.events import ACTOR_KINDS
from livecommerce.growth.analytics.judge import UnreadableEvents
from livecommerce.growth.analytics.live import Tracker
from livecommerce.growth.analytics.writer import BufferFull, PartitionUnavailable, WriterClosed
from livecommerce.outage import BACKEND_ERRORS
from livecommerce.realtime.protocol import Reply, error_reply

MAX_OFFSET_MS = 30 * 86400 * 1000

# Records a backend failure (``Endpoint._outage``: the exception, what failed); the backend's name.
Outage = Callable[[Exception, str], str]


class TrackHead(msgspec.Struct, gc=False):
    """A ``track`` frame's fields but its events (skipped, not decoded: the tracker decodes
    them once, typed); any other field is ignored, as the general path ignores it."""

    type: Any = None
    events: msgspec.Raw = msgspec.Raw(b"null")
    offset_ms: Any = 0
    ref: Any = None


TRACK_HEAD = msgspec.json.Decoder(TrackHead)
TRACK = '"track"'  # in a message's text: likely a track frame, read with TRACK_HEAD first


def track_frame(
    identity: str,
    tracker: Tracker | None,
    events: Any,
    offset: Any,
    ref: Any,
    text: str,
    outage: Outage,
) -> Reply | Coroutine[Any, Any, Reply]:
    """A ``track`` frame: analytics events, corrected by the client's ``offset_ms`` (server
    time minus its clock, measured from the welcome frame's ``server_time``). ``events``:
    the frame's, decoded or (``msgspec.Raw``) not yet. ``identity``: the connection's
    (``kind:subject``); ``tracker``: the endpoint's (None: analytics is off on this node)."""
    unread = isinstance(events, msgspec.Raw)
    if unread:
        # A list is read by the tracker; anything else is refused below.
        events = None if bytes(memoryview(events)[:1]) == b"[" else {}
    if ref is not None and not (isinstance(ref, str) and len(ref) <= 64):
        return error_reply("invalid", "ref must be a string of at most 64 characters")
    kind, _, subject = identity.partition(":")
    if kind not in ACTOR_KINDS:  # a host's socket (the console): as POST /api/events
        return error_reply("wrong_role", "only users and viewers record events", ref)
    if tracker is None:
        return error_reply("unavailable", "analytics is not enabled on this node", ref)
    if not isinstance(events, list) and not (unread and events is None):
        return error_reply("invalid", "events must be a list", ref)  # missing or null too
    if not isinstance(offset, int) or isinstance(offset, bool) or abs(offset) > MAX_OFFSET_MS:
        return error_reply("invalid", "offset_ms must be an integer (ms)", ref)
    return tracked(tracker, kind, subject, events, offset, ref, text, outage)


async def tracked(
    tracker: Tracker,
    kind: str,
    subject: str,
    events: list[Any] | None,
    offset: int,
    ref: Any,
    text: str,
    outage: Outage,
) -> Reply:
    """Store a checked ``track`` frame's events: the ``tracked`` answer, or an ``error``
    carrying its ``ref`` (the socket stays open)."""
    try:
        out = await tracker(kind, subject, events, offset, text.encode())
    except (BufferFull, WriterClosed, PartitionUnavailable):
        return {"type": "error", "code": "unavailable", "message": "retry later", "ref": ref}
    except UnreadableEvents as exc:  # its events, left unread by _handle, cannot be read
        return error_reply("invalid", str(exc), ref)
    except BACKEND_ERRORS as exc:
        # The events could not be stored (PostgreSQL down): the viewer keeps watching and
        # resends the frame later; only a join or a comment needs the socket closed.
        name = outage(exc, "track frame not stored")
        return error_reply("unavailable", f"{name} is unavailable; send the frame again later", ref)
    return {
        "type": "tracked",
        "ref": ref,
        "accepted": out.accepted,
        "stored": out.stored,
        "duplicates": out.duplicates,
        "clamped": out.clamped,
        "rejected": [
            {"index": r.index, "code": r.code, "message": r.message, "id": r.id}
            for r in out.rejected
        ],
    }
