"""HTTP: the host moderates its room's comments — rules, mutes, held comments (console live
panel). Every route takes a host token (or the console session) and answers 404
``room_not_found`` for another host's room, exactly like a missing one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Query, to
from livecommerce.api.types import NO_NUL
from livecommerce.moderation import held, rules

AuthorKind = Literal["user", "viewer", "host"]
AuthorId = Annotated[
    str,
    Meta(pattern=r"^[A-Za-z0-9_-]{1,20}(?!\n)$", description="The comment frame's `user.id`"),
]
Policy = Literal["hold", "show"]
Word = Annotated[str, Meta(min_length=1, max_length=32), NO_NUL]


class AuthorRef(Body):
    """A comment's author, as its frame names it (``{"kind": "user", "id": "12"}``)."""

    kind: AuthorKind
    id: AuthorId


class Author(Model):
    kind: str
    id: str


class MuteBody(Body):
    """Who to mute, and for how long (omitted: until unmuted)."""

    user: AuthorRef
    seconds: Annotated[int, Meta(ge=1, le=rules.MAX_MUTE_SECONDS)] | None = None


class MuteOut(Model):
    user: Author
    muted_until: Annotated[datetime | None, Meta(description="null: until unmuted")]
    created_at: datetime


class Mutes(Model):
    items: list[MuteOut]


class UnmuteQuery(Query):
    kind: AuthorKind
    id: AuthorId


class Unmuted(Model):
    unmuted: Annotated[bool, Meta(description="false: the author was not muted")]


class ModerationOut(Model):
    """The room's comment rules."""

    room_muted: Annotated[bool, Meta(description="Only the room's host may comment")]
    unchecked_policy: Annotated[
        str, Meta(description="`hold` or `show`: comments WeChat's check could not judge")
    ]
    blocked_words: list[str]


class ModerationPatch(Body):
    """The rules to change (absent = unchanged); ``blocked_words`` replaces the list."""

    room_muted: bool | None = None
    unchecked_policy: Policy | None = None
    blocked_words: Annotated[list[Word], Meta(max_length=rules.MAX_WORDS)] | None = None


class HeldOut(Model):
    id: int
    user: Author
    text: str
    reason: Annotated[str, Meta(description="`review` (WeChat) or `unchecked` (policy hold)")]
    status: Annotated[str, Meta(description="`held`, `approved` or `rejected`")]
    created_at: datetime
    seq: Annotated[int | None, Meta(description="The comment frame's seq once approved")] = None


class HeldList(Model):
    items: list[HeldOut]


def _mute(m: rules.Mute) -> MuteOut:
    return MuteOut(
        user=Author(kind=m.kind, id=m.id), muted_until=m.muted_until, created_at=m.created_at
    )


async def get_moderation(call: Call[None, None]) -> ModerationOut:
    """The room's comment rules: room mute, blocked words, policy for unchecked comments."""
    s = await rules.get_settings(call.app[keys.PG_POOL], call.host_id, call.id("room_id"))
    return to(ModerationOut, s)


async def update_moderation(call: Call[ModerationPatch, None]) -> ModerationOut:
    """Change the room's comment rules; they apply to the next comment on every node.

    ``room_muted``: only the room's host may comment (viewers get ``error`` ``room_muted``).
    ``blocked_words`` (at most 200, 1–32 characters each; compared after NFKC and case
    folding): a comment containing one is refused to its author (``error`` ``blocked_word``).
    ``unchecked_policy``: ``hold`` (for the host's review) or ``show`` (published, logged) for
    comments WeChat's content check could not judge (outage; authors without an openid).
    """
    b, app = call.body, call.app
    s = await rules.update_settings(
        app[keys.PG_POOL], app[keys.REDIS], call.host_id, call.id("room_id"),
        room_muted=b.room_muted, unchecked_policy=b.unchecked_policy,
        blocked_words=b.blocked_words,
    )  # fmt: skip
    return to(ModerationOut, s)


async def list_mutes(call: Call[None, None]) -> Mutes:
    """The authors muted in the room now (expired mutes are not listed)."""
    found = await rules.list_mutes(call.app[keys.PG_POOL], call.host_id, call.id("room_id"))
    return Mutes(items=[_mute(m) for m in found])


async def mute(call: Call[MuteBody, None]) -> MuteOut:
    """Mute a comment's author in this room, for ``seconds`` or until unmuted.

    Their next comment is refused with ``error`` ``muted`` (with ``until``). Muting again
    replaces the end. The author is the comment frame's ``user``.
    """
    b, app = call.body, call.app
    m = await rules.mute(
        app[keys.PG_POOL], app[keys.REDIS], call.host_id, call.id("room_id"),
        b.user.kind, b.user.id, b.seconds,
    )  # fmt: skip
    return _mute(m)


async def unmute(call: Call[None, UnmuteQuery]) -> Unmuted:
    """Lift a mute (``?kind=user&id=12``); ``unmuted: false`` if the author was not muted."""
    q, app = call.query, call.app
    done = await rules.unmute(
        app[keys.PG_POOL], app[keys.REDIS], call.host_id, call.id("room_id"), q.kind, q.id
    )
    return Unmuted(unmuted=done)


async def list_held(call: Call[None, None]) -> HeldList:
    """Comments waiting for the host's decision (WeChat said `review`, or policy `hold`)."""
    found = await held.list_held(call.app[keys.PG_POOL], call.host_id, call.id("room_id"))
    return HeldList(items=[to(HeldOut, h) for h in found])


async def approve_held(call: Call[None, None]) -> HeldOut:
    """Publish a held comment to the room (once). 409 ``already_decided``."""
    return await _decide(call, approve=True)


async def reject_held(call: Call[None, None]) -> HeldOut:
    """Drop a held comment: it is never published. 409 ``already_decided``."""
    return await _decide(call, approve=False)


async def _decide(call: Call[None, None], *, approve: bool) -> HeldOut:
    app = call.app
    h = await held.decide(
        app[keys.PG_POOL], app[keys.BROKER], call.host_id, call.id("room_id"),
        call.id("held_id"), approve,
    )  # fmt: skip
    return to(HeldOut, h)
