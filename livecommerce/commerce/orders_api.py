"""HTTP: the buyer's orders (user token) and shipping (host token)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import HOST, Body, Call, Model, Query, Reply, decode_query, to
from livecommerce.api.types import NO_NUL, Cursor, Id
from livecommerce.auth.http import require_claims
from livecommerce.commerce import cursors, orders, paychecks
from livecommerce.commerce.address import ShippingAddress
from livecommerce.errors import ValidationError

OrderStatus = Literal["pending_payment", "paid", "shipped", "completed", "cancelled", "refunded"]
Quantity = Annotated[
    int, Meta(ge=1, le=10_000, description="Units; at most `orders.max_quantity` (config, 99)")
]


class OrderCreate(Body):
    """A new order: which goods and how many (the price is the goods' price now), and where
    to ship it (the `wx.chooseAddress` result; it can also be set later, before shipping)."""

    goods_id: Id
    quantity: Quantity
    address: ShippingAddress | None = None


class ShipBody(Body):
    """The parcel a host shipped a paid order in."""

    carrier: Annotated[str, Meta(min_length=1, max_length=50), NO_NUL]
    tracking_no: Annotated[str, Meta(min_length=1, max_length=64), NO_NUL]


class OrderListQuery(Query):
    status: OrderStatus | None = None
    limit: Annotated[int, Meta(ge=1, le=orders.MAX_PAGE)] = 20
    cursor: Cursor | None = None


class Order(Model):
    """An order: a snapshot of the goods' title, image and price at creation."""

    id: int
    out_trade_no: Annotated[str, Meta(description="Merchant order no. for WeChat Pay")]
    user_id: int
    goods_id: int
    host_id: int | None
    quantity: int
    unit_price_fen: Annotated[int, Meta(description="Price snapshot at creation, in fen")]
    total_fen: Annotated[int, Meta(description="quantity x unit price (less points), in fen")]
    title: str
    image: str
    status: OrderStatus
    carrier: str | None
    tracking_no: str | None
    transaction_id: str | None
    cancel_reason: str | None
    expires_at: Annotated[datetime, Meta(description="Unpaid orders auto-cancel at this time")]
    paid_at: datetime | None
    shipped_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime
    address: Annotated[
        ShippingAddress | None,
        Meta(description="Shipping address; only the buyer and the order's host see it"),
    ]


class OrderPage(Model):
    items: list[Order]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page")]


class RefundIssue(Model):
    """A refund of the order that did not pay the buyer: `closed` by WeChat Pay (not paid
    back; a new refund is needed) or `abnormal` (the buyer's account refused it; settle it in
    the merchant platform)."""

    id: int
    out_refund_no: str
    status: Literal["closed", "abnormal"]
    amount_fen: int
    reason: Annotated[str, Meta(description="Why the refund was made")]
    last_error: Annotated[str | None, Meta(description="Why it did not pay the buyer")]
    finished_at: datetime | None
    next_refund_id: Annotated[
        int | None,
        Meta(description="The order's next refund (a re-issue or a new one); null: none yet"),
    ]


class HostOrder(Order):
    """An order as its host sees it: with the refunds that did not pay the buyer."""

    refund_issues: list[RefundIssue]


class HostOrderPage(Model):
    items: list[HostOrder]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page")]


def quantity_allowed(call: Call[Any, Any], quantity: int) -> None:
    """The configured ceiling on units per order (``orders.max_quantity``); 400 past it."""
    ceiling = call.app[keys.SETTINGS].orders.max_quantity
    if quantity > ceiling:
        raise ValidationError("quantity", f"must be between 1 and {ceiling}")


async def create(call: Call[OrderCreate, None]) -> Reply[Order]:
    """Create an order and reserve its stock (201 new, 200 a replay of the same key).

    The unit price is the goods' price now; the order must be paid before `expires_at`.
    """
    quantity_allowed(call, call.body.quantity)
    settings = call.app[keys.SETTINGS]
    async with call.app[keys.PG_POOL].acquire() as conn:
        order, created = await orders.create_order(
            conn,
            user_id=call.user_id,
            goods_id=call.body.goods_id,
            quantity=call.body.quantity,
            idempotency_key=call.idempotency_key,
            payment_timeout_seconds=settings.orders.payment_timeout_seconds,
            address=_address(call.body.address),
        )
    if created:
        call.app[keys.ORDER_REAPER].poke()
    return Reply(to(Order, order), status=201 if created else 200)


async def list_mine(call: Call[None, OrderListQuery]) -> OrderPage:
    """The caller's orders, newest first, in keyset pages (optionally one status)."""
    q = call.query
    secret = call.app[keys.SETTINGS].secret
    scope = f"orders:{call.user_id}"
    after = cursors.decode(secret, scope, q.cursor, [q.status])
    items, next_id = await orders.list_orders(
        call.app[keys.PG_POOL], call.user_id, limit=q.limit, after_id=after, status=q.status
    )
    next_cursor = None if next_id is None else cursors.encode(secret, scope, next_id, [q.status])
    return to(OrderPage, {"items": items, "next_cursor": next_cursor})


async def read(call: Call[None, None]) -> Order:
    """One of the caller's orders (anyone else's: 404)."""
    return to(Order, await orders.get_order(call.app[keys.PG_POOL], call.user_id, call.id()))


async def cancel(call: Call[None, None]) -> Order:
    """The buyer cancels an unpaid order (its stock goes back).

    A WeChat Pay order made for it is closed before the answer, so the buyer cannot pay it
    afterwards (if that fails, the order reaper closes it later).
    """
    pool = call.app[keys.PG_POOL]
    async with pool.acquire() as conn:
        order = await orders.cancel_order(conn, call.user_id, call.id())
    if not order["prepaid"]:
        return to(Order, order)
    if await paychecks.close_order(pool, call.app[keys.PAY_CLIENT], order["id"]):
        order = await orders.get_order(pool, call.user_id, order["id"])  # paid meanwhile?
    return to(Order, order)


async def confirm(call: Call[None, None]) -> Order:
    """The buyer confirms receipt of a shipped order (it completes)."""
    async with call.app[keys.PG_POOL].acquire() as conn:
        return to(Order, await orders.confirm_received(conn, call.user_id, call.id()))


async def ship(call: Call[ShipBody, None]) -> Order:
    """The host ships one of its paid orders with a carrier and tracking number.

    A paid order whose buyer has not given a shipping address is 409 `address_required`.
    """
    b = call.body
    async with call.app[keys.PG_POOL].acquire() as conn:
        order = await orders.ship_order(conn, call.host_id, call.id(), b.carrier, b.tracking_no)
    return to(Order, order)


def _address(value: ShippingAddress | None) -> dict[str, Any] | None:
    return None if value is None else msgspec.to_builtins(value)


async def set_address(call: Call[ShippingAddress, None]) -> Order:
    """The buyer sets the shipping address of an order not shipped yet (409 afterwards)."""
    async with call.app[keys.PG_POOL].acquire() as conn:
        order = await orders.set_address(conn, call.user_id, call.id(), _address(call.body) or {})
    return to(Order, order)


HostOrderState = Literal[
    "pending_payment", "paid", "shipped", "completed", "cancelled", "refunded",
    "after_sales_pending", "refunding", "refund_issues",
]  # fmt: skip


class HostOrderQuery(Query):
    state: Annotated[
        HostOrderState | None,
        Meta(
            description="`paid` = to ship; `after_sales_pending`; `refunding`; `refund_issues` "
            "(an abnormal refund, or a closed one not followed by another); or a status"
        ),
    ] = None
    room_id: Id | None = None
    limit: Annotated[int, Meta(ge=1, le=orders.MAX_PAGE)] = 20
    cursor: Cursor | None = None


async def _host_page(
    call_app: Any, host_id: int, q: HostOrderQuery, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    secret = call_app[keys.SETTINGS].secret
    scope, filters = f"host_orders:{host_id}", [q.state, q.room_id]
    after = cursors.decode(secret, scope, q.cursor, filters)
    items, next_id = await orders.list_host_orders(
        call_app[keys.PG_POOL], host_id, status=q.state, room_id=q.room_id, limit=limit,
        after_id=after,
    )  # fmt: skip
    return items, None if next_id is None else cursors.encode(secret, scope, next_id, filters)


async def host_list(call: Call[None, HostOrderQuery]) -> HostOrderPage:
    """The host's orders, newest first, keyset-paginated, by state and/or room (with addresses
    and each order's refunds that did not pay the buyer)."""
    items, next_cursor = await _host_page(call.app, call.host_id, call.query, call.query.limit)
    return to(HostOrderPage, {"items": items, "next_cursor": next_cursor})


CSV_COLUMNS = (
    "id", "out_trade_no", "status", "title", "quantity", "total_fen", "created_at", "paid_at",
    "carrier", "tracking_no",
)  # fmt: skip
ADDRESS_COLUMNS = (
    "userName", "telNumber", "provinceName", "cityName", "countyName", "detailInfo", "postalCode",
)  # fmt: skip
CSV_MAX_ROWS = 10_000


async def host_csv(request: web.Request) -> web.StreamResponse:
    """The host's orders as CSV (same filters as `GET /api/host/orders`; at most 10 000 rows
    from `cursor` on, newest first), for a spreadsheet or a shipping tool."""
    claims = require_claims(request, *HOST)
    assert claims.host_id is not None
    q = decode_query(request, HostOrderQuery)
    items, _ = await _host_page(request.app, claims.host_id, q, CSV_MAX_ROWS)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, *ADDRESS_COLUMNS])
    for o in items:
        address = o.get("address") or {}
        writer.writerow(
            [_cell(o.get(c)) for c in CSV_COLUMNS]
            + [_cell(address.get(c)) for c in ADDRESS_COLUMNS]
        )
    return web.Response(
        body=out.getvalue().encode("utf-8-sig"),  # the BOM makes Excel read UTF-8
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="orders.csv"'},
    )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
