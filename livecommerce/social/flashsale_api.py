"""HTTP: flash sales — hosts create and push them, buyers buy (thin: decode, call, answer)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta
from redis.exceptions import RedisError

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Reply, to
from livecommerce.api.types import MAX_STOCK, Fen, Id, ShowSeconds, Time
from livecommerce.commerce.orders_api import Order
from livecommerce.errors import ValidationError
from livecommerce.social import flashsale

MIN_YEAR, MAX_YEAR = 2000, 2100
# The static ceiling of units per buyer; the configured one (flash_sale.max_per_user_limit,
# 10 by default) is checked by the handler.
MAX_PER_USER = 10_000

SaleStock = Annotated[int, Meta(ge=1, le=MAX_STOCK, description="Units offered at the sale price")]
PerUser = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_PER_USER,
        description="Units per buyer; at most `flash_sale.max_per_user_limit` (config, 10)",
    ),
]
SaleTime = Annotated[Time, Meta(description="RFC 3339 with an offset, years 2000-2100")]


def _in_years(name: str, at: datetime) -> None:
    """400 naming ``name`` for a timestamp outside the years 2000-2100."""
    if not MIN_YEAR <= at.year <= MAX_YEAR:
        raise ValidationError(name, f"must be between the years {MIN_YEAR} and {MAX_YEAR}")


def _per_user_allowed(call: Call[Any, Any], name: str, value: int) -> None:
    """The configured ceiling of units per buyer (``flash_sale.max_per_user_limit``)."""
    ceiling = call.app[keys.SETTINGS].flash_sale.max_per_user_limit
    if value > ceiling:
        raise ValidationError(name, f"must be between 1 and {ceiling}")


class FlashSaleCreate(Body):
    """A sale of the host's goods: a price and a stock for a time window."""

    goods_id: Id
    sale_price_fen: Fen
    stock: SaleStock
    starts_at: SaleTime
    ends_at: Annotated[SaleTime, Meta(description="After `starts_at`")]
    per_user_limit: PerUser = 1

    def __post_init__(self) -> None:
        _in_years("starts_at", self.starts_at)
        _in_years("ends_at", self.ends_at)


class BuyBody(Body):
    """How many units to buy (the body may be empty: one unit)."""

    quantity: PerUser = 1


class PushBody(Body):
    """The live room to show the sale in, and for how long."""

    room_id: Id
    show_seconds: Annotated[
        ShowSeconds | None, Meta(description="Default `rooms.bubble_default_seconds` (config)")
    ] = None


class SaleGoods(Model):
    """The goods on sale, as they are now."""

    id: int
    title: str
    image: Annotated[str, Meta(description="The first image, or empty")]
    price_fen: Annotated[int, Meta(description="Regular price, in fen")]


class FlashSale(Model):
    """A flash sale with its live stock left."""

    id: int
    host_id: int
    goods: SaleGoods
    sale_price_fen: int
    stock: Annotated[int, Meta(description="Units offered in the sale")]
    stock_left: Annotated[int, Meta(description="Live units left (Redis)")]
    per_user_limit: int
    starts_at: datetime
    ends_at: datetime
    created_at: datetime


class FlashSalePush(Model):
    """The published bubble: its room sequence number and push id."""

    seq: Annotated[int, Meta(description="Room sequence number of the frame")]
    push_id: str
    sale: FlashSale


async def create(call: Call[FlashSaleCreate, None]) -> FlashSale:
    """Create a flash sale of the host's goods.

    The goods must be on sale with at least `stock` units on hand.
    """
    b = call.body
    _per_user_allowed(call, "per_user_limit", b.per_user_limit)
    app = call.app
    async with app[keys.PG_POOL].acquire() as conn:
        sale = await flashsale.create_sale(
            conn,
            app[keys.SETTINGS].flash_sale,
            host_id=call.host_id,
            goods_id=b.goods_id,
            sale_price_fen=b.sale_price_fen,
            stock=b.stock,
            per_user_limit=b.per_user_limit,
            starts_at=b.starts_at,
            ends_at=b.ends_at,
        )
    # Warm Redis now rather than on the first buyer; if Redis is down, the first buy loads it.
    with contextlib.suppress(RedisError, OSError):
        await flashsale.reconcile(app[keys.PG_POOL], app[keys.FLASH_STOCK], sale["id"])
    return to(FlashSale, sale)


async def read(call: Call[None, None]) -> FlashSale:
    """A flash sale with its live stock left."""
    app = call.app
    return to(FlashSale, await flashsale.get_sale(app[keys.PG_POOL], app[keys.FLASH_STOCK],
                                                  call.id()))  # fmt: skip


async def buy(call: Call[BuyBody, None]) -> Reply[Order]:
    """Buy at the sale price: an unpaid order (201 new, 200 a replay of the same key).

    409 codes: not_started, ended, sold_out, limit_reached, in_progress (this Idempotency-Key
    is being processed), idempotency_key_reused. The units return to the sale if the order is
    cancelled, never paid, or refunded.
    """
    _per_user_allowed(call, "quantity", call.body.quantity)
    app = call.app
    stock = app[keys.FLASH_STOCK]
    sale_id = call.id()
    purchase = await flashsale.buy(
        app[keys.PG_POOL], stock, sale_id=sale_id, user_id=call.user_id,
        quantity=call.body.quantity, idempotency_key=call.idempotency_key,
    )  # fmt: skip
    if purchase.created:
        app[keys.ORDER_REAPER].poke()
        if purchase.stock_left is not None:
            await flashsale.announce_stock(app[keys.BROKER], stock, sale_id, purchase.stock_left)
    return Reply(to(Order, purchase.order), status=201 if purchase.created else 200)


async def push(call: Call[PushBody, None]) -> FlashSalePush:
    """Show the sale as a live room's bubble (stock-left updates follow).

    201 when published. The room must be the host's and live (409 room_not_live when scheduled,
    room_ended when ended).
    """
    app = call.app
    b = call.body
    show = b.show_seconds or app[keys.SETTINGS].rooms.bubble_default_seconds
    result = await flashsale.push_to_room(
        app[keys.PG_POOL], app[keys.BROKER], app[keys.FLASH_STOCK], host_id=call.host_id,
        room_id=b.room_id, sale_id=call.id(), show_seconds=show,
    )  # fmt: skip
    return to(FlashSalePush, result)
