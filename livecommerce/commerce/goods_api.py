"""HTTP: goods create/edit (host token) and the public feed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Query, Reply, to
from livecommerce.api.types import NO_NUL, Cursor, Fen, Id, NonBlankTitle, Stock, Url
from livecommerce.commerce import cursors, goods
from livecommerce.commerce.goods import GoodsInput

GoodsStatus = Literal["draft", "on_sale", "off_sale"]
Title = Annotated[NonBlankTitle, Meta(description="Not blank")]
Description = Annotated[str, Meta(max_length=5000), NO_NUL]
Category = Annotated[str, Meta(max_length=50), NO_NUL]
Images = Annotated[list[Url], Meta(max_length=9)]
RoomIds = Annotated[list[Id], Meta(max_length=20, description="The host's rooms to show it in")]


class GoodsCreate(Body):
    """New goods of the calling host."""

    title: Title
    price_fen: Fen
    stock: Stock
    description: Description | None = None
    images: Images | None = None
    category: Category | None = None
    status: GoodsStatus | None = None
    room_ids: RoomIds | None = None


class GoodsPatch(Body):
    """An edit: only the given fields change (null = unchanged)."""

    title: Title | None = None
    price_fen: Fen | None = None
    stock: Stock | None = None
    description: Description | None = None
    images: Images | None = None
    category: Category | None = None
    status: GoodsStatus | None = None
    room_ids: RoomIds | None = None


class FeedQuery(Query):
    category: Category | None = None
    room_id: Id | None = None
    limit: Annotated[int, Meta(ge=1, le=goods.MAX_PAGE)] = 20
    cursor: Cursor | None = None


class Goods(Model):
    id: int
    host_id: int | None
    title: str
    description: str
    images: list[str]
    price_fen: Annotated[int, Meta(description="Price in fen (1/100 CNY)")]
    stock: Annotated[int, Meta(description="Units left to sell")]
    category: str
    status: GoodsStatus
    room_ids: list[int]
    created_at: datetime
    updated_at: datetime


class GoodsPage(Model):
    items: list[Goods]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page")]


def _goods_input(body: GoodsCreate | GoodsPatch) -> GoodsInput:
    fields = msgspec.structs.asdict(body)
    if body.room_ids is not None:
        fields["room_ids"] = sorted(set(body.room_ids))
    return GoodsInput(**fields)


async def create(call: Call[GoodsCreate, None]) -> Reply[Goods]:
    """A host lists new goods (linked to its own rooms)."""
    async with call.app[keys.PG_POOL].acquire() as conn:
        item = await goods.create_goods(conn, call.host_id, _goods_input(call.body))
    return Reply(to(Goods, item), status=201)


async def update(call: Call[GoodsPatch, None]) -> Goods:
    """A host edits its own goods (only the given fields)."""
    async with call.app[keys.PG_POOL].acquire() as conn:
        item = await goods.update_goods(conn, call.host_id, call.id(), _goods_input(call.body))
    return to(Goods, item)


async def read(call: Call[None, None]) -> Goods:
    """One goods item (drafts are not public)."""
    return to(Goods, await goods.get_goods(call.app[keys.PG_POOL], call.id(), public=True))


async def feed(call: Call[None, FeedQuery]) -> GoodsPage:
    """The waterfall feed of on-sale goods, newest first, in keyset pages."""
    q = call.query
    filters = [q.category, q.room_id]
    secret = call.app[keys.SETTINGS].secret
    after = cursors.decode(secret, "goods", q.cursor, filters)
    items, next_id = await goods.feed(
        call.app[keys.PG_POOL], limit=q.limit, after_id=after, category=q.category,
        room_id=q.room_id,
    )  # fmt: skip
    next_cursor = None if next_id is None else cursors.encode(secret, "goods", next_id, filters)
    return to(GoodsPage, {"items": items, "next_cursor": next_cursor})
