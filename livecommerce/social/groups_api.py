"""HTTP: group buying — offers (host), open / join / read groups, open groups of a goods."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Query, Reply, to
from livecommerce.api.types import Fen, Id
from livecommerce.commerce.orders_api import Order
from livecommerce.social import groups, offers

MAX_FILL_SECONDS = 7 * 24 * 3600

# A group a client can see (a `pending` one, whose leader has not paid yet, is a 404).
GroupStatus = Literal["open", "succeeded", "failed", "cancelled"]


class OfferCreate(Body):
    """Group buying on the host's goods: `size` buyers at `group_price_fen` each."""

    goods_id: Id
    group_price_fen: Fen
    size: Annotated[int, Meta(ge=2, le=100, description="Members a group needs")]
    fill_seconds: Annotated[
        int, Meta(ge=60, le=MAX_FILL_SECONDS, description="Time to fill a group once opened")
    ]


class NoBody(Body):
    """No fields: the body may be empty or `{}`."""


class GroupsQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=groups.MAX_LIST, description="At most this many")] = 20


class GroupOffer(Model):
    id: int
    host_id: int
    goods_id: int
    group_price_fen: int
    size: int
    fill_seconds: int
    active: bool
    created_at: datetime


class GroupOrder(Model):
    """The group opened or joined, and the caller's order for the seat (pay it to count)."""

    group_id: int
    order: Order


class Member(Model):
    user_id: int
    nickname: str
    avatar_url: str
    paid: bool
    joined_at: datetime


class Group(Model):
    """A group: members with avatars, seats and time left."""

    id: int
    offer_id: int
    goods_id: int
    group_price_fen: int
    leader_id: int
    size: int
    status: GroupStatus
    paid_members: int
    seats_left: int
    expires_at: datetime | None
    seconds_left: Annotated[int, Meta(description="Time left to fill (0 unless open)")]
    finished_at: datetime | None
    members: list[Member]


class GroupList(Model):
    items: list[Group]


async def create_offer(call: Call[OfferCreate, None]) -> GroupOffer:
    """Offer group buying on the host's goods."""
    b = call.body
    async with call.app[keys.PG_POOL].acquire() as conn:
        offer = await groups.create_offer(
            conn, host_id=call.host_id, goods_id=b.goods_id, group_price_fen=b.group_price_fen,
            size=b.size, fill_seconds=b.fill_seconds,
        )  # fmt: skip
    return to(GroupOffer, offer)


async def open_group(call: Call[NoBody, None]) -> Reply[GroupOrder]:
    """Open a group: an order at the group price; joinable once paid (201 new, 200 a replay).

    409 codes: already_in_group, sold_out, idempotency_key_reused.
    """
    settings = call.app[keys.SETTINGS]
    async with call.app[keys.PG_POOL].acquire() as conn:
        result, created = await groups.open_group(
            conn, settings.groups, user_id=call.user_id, offer_id=call.id(),
            idempotency_key=call.idempotency_key,
            payment_timeout_seconds=settings.orders.payment_timeout_seconds,
        )  # fmt: skip
    if created:
        call.app[keys.ORDER_REAPER].poke()
    return Reply(to(GroupOrder, result), status=201 if created else 200)


async def join(call: Call[NoBody, None]) -> Reply[GroupOrder]:
    """Join an open group: a seat and an order at the group price (201 new, 200 a replay).

    409 codes: group_full, group_expired, group_closed, already_joined, already_in_group,
    sold_out, idempotency_key_reused.
    """
    settings = call.app[keys.SETTINGS]
    async with call.app[keys.PG_POOL].acquire() as conn:
        result, created = await groups.join_group(
            conn, settings.groups, user_id=call.user_id, group_id=call.id(),
            idempotency_key=call.idempotency_key,
            payment_timeout_seconds=settings.orders.payment_timeout_seconds,
        )  # fmt: skip
    if created:
        call.app[keys.ORDER_REAPER].poke()
        # A seat was taken: rooms showing the offer's bubble hear "N joined, M to go".
        app = call.app
        await offers.announce_groups(app[keys.PG_POOL], app[keys.BROKER], [result["group_id"]])
    return Reply(to(GroupOrder, result), status=201 if created else 200)


async def read(call: Call[None, None]) -> Group:
    """A group: members with avatars, seats and time left."""
    return to(Group, await groups.get_group(call.app[keys.PG_POOL], call.id()))


async def list_for_goods(call: Call[None, GroupsQuery]) -> GroupList:
    """Open groups of the goods with seats left (to join one)."""
    items = await groups.list_open(call.app[keys.PG_POOL], call.id(), call.query.limit)
    return to(GroupList, {"items": items})
