"""HTTP: the console shelf's flash sales and group offers (host lists), a group offer as a
live-room bubble (host push), and a group offer as a viewer sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Call, Model, Query, to
from livecommerce.api.types import Id
from livecommerce.social import offers
from livecommerce.social.flashsale_api import FlashSale, PushBody, SaleGoods


class ShelfQuery(Query):
    room_id: Annotated[
        Id | None, Meta(description="Only offers of goods attached to this room of the host's")
    ] = None


class FlashSaleList(Model):
    items: Annotated[list[FlashSale], Meta(description="Newest first, at most 50")]


class FeaturedGroup(Model):
    """The offer's open group closest to filling: the one a viewer joins from the bubble."""

    id: int
    size: int
    joined: Annotated[int, Meta(description="Seats taken (paid or not yet paid)")]
    to_go: Annotated[int, Meta(description="Seats left")]
    paid: Annotated[int, Meta(description="Members who have paid")]
    expires_at: datetime


class GroupOfferView(Model):
    """A group offer with its goods and its featured group (null: none open, start one)."""

    id: int
    host_id: int
    goods: SaleGoods
    group_price_fen: int
    size: int
    fill_seconds: int
    active: bool
    created_at: datetime
    group: FeaturedGroup | None


class GroupOfferList(Model):
    items: Annotated[list[GroupOfferView], Meta(description="Newest first, at most 50")]


class GroupOfferPush(Model):
    """The published bubble: its room sequence number and push id."""

    seq: Annotated[int, Meta(description="Room sequence number of the frame")]
    push_id: str
    offer: GroupOfferView


async def host_flash_sales(call: Call[None, ShelfQuery]) -> FlashSaleList:
    """The host's flash sales (for the shelf), newest first; `stock_left` from PostgreSQL."""
    items = await offers.host_flash_sales(call.app[keys.PG_POOL], call.host_id, call.query.room_id)
    return to(FlashSaleList, {"items": items})


async def host_group_offers(call: Call[None, ShelfQuery]) -> GroupOfferList:
    """The host's group offers with their featured group (for the shelf), newest first."""
    items = await offers.host_group_offers(call.app[keys.PG_POOL], call.host_id, call.query.room_id)
    return to(GroupOfferList, {"items": items})


async def read_group_offer(call: Call[None, None]) -> GroupOfferView:
    """A group offer with its featured group ("N joined, M to go")."""
    return to(GroupOfferView, await offers.group_offer(call.app[keys.PG_POOL], call.id()))


async def push_group_offer(call: Call[PushBody, None]) -> GroupOfferPush:
    """Show the group offer as a live room's bubble (`group_progress` frames follow).

    201 when published. The room must be the host's and live (409 room_not_live when scheduled,
    room_ended when ended); 409 offer_inactive, not_on_sale.
    """
    app = call.app
    b = call.body
    show = b.show_seconds or app[keys.SETTINGS].rooms.bubble_default_seconds
    result = await offers.push_group_offer(
        app[keys.PG_POOL], app[keys.BROKER], host_id=call.host_id, room_id=b.room_id,
        offer_id=call.id(), show_seconds=show,
    )  # fmt: skip
    return to(GroupOfferPush, result)
