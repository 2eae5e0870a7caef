"""HTTP: the caller's points — actions (check-in, share), balance, expiring lots, history,
and checkout with points."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Query, Reply, to
from livecommerce.api.types import NO_NUL, Cursor, Id
from livecommerce.commerce import cursors
from livecommerce.commerce.orders_api import Order, Quantity, quantity_allowed
from livecommerce.errors import ValidationError
from livecommerce.social import checkout as checkout_service
from livecommerce.social.points import earning, reading

MAX_POINTS = 10**9
MAX_DAYS = 3660

EntryKind = Literal[
    "checkin", "share", "purchase", "purchase_reversal", "spend", "spend_restore", "expire",
    "purchase_restore", "spend_restore_reversal",
]  # fmt: skip


class ActionBody(Body):
    """An action that earns points: `checkin` (daily), or `share` of goods (`goods_id`)."""

    # Text, not an enum, so an unknown action keeps its documented code `unknown_action`.
    action: Annotated[
        str,
        Meta(min_length=1, max_length=32, extra_json_schema={"enum": list(earning.ACTIONS)}),
        NO_NUL,
    ]
    goods_id: Annotated[Id | None, Meta(description="Required for share, refused otherwise")] = None


class CheckoutBody(Body):
    """An order of `quantity` goods with up to `points` points off its total."""

    goods_id: Id
    quantity: Quantity
    points: Annotated[int, Meta(ge=0, le=MAX_POINTS, description="Points to spend")]


class ExpiringQuery(Query):
    days: (
        Annotated[
            int, Meta(ge=1, le=MAX_DAYS, description="Window (default `points.expiring_soon_days`)")
        ]
        | None
    ) = None


class HistoryQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=reading.MAX_PAGE, description="Page size")] = 20
    cursor: Cursor | None = None


class PointsOrder(Order):
    """An order with points off its total (`total_fen` is after the discount)."""

    points_spent: Annotated[
        int, Meta(description="Points this order spent (a replay answers the same)")
    ]


class ActionResult(Model):
    """What an action earned (`credited` false: already done today / capped)."""

    action: Literal["checkin", "share"]
    credited: Annotated[bool, Meta(description="False: already done / capped")]
    points: Annotated[int, Meta(description="Points credited by this call")]
    day: Annotated[date, Meta(description="In `points.time_zone`")]
    balance: int
    reason: Literal["already_shared", "daily_cap"] | msgspec.UnsetType = msgspec.UNSET


class Balance(Model):
    """The caller's spendable points."""

    balance: Annotated[int, Meta(ge=0)]


class Lot(Model):
    lot_id: int
    points: Annotated[int, Meta(description="Points left in the lot")]
    expires_at: datetime


class Expiring(Model):
    """Lots expiring within `days`, soonest first, and their total."""

    days: int
    lots: list[Lot]
    points: int


class Entry(Model):
    """One ledger entry (positive `delta` credits, negative debits)."""

    id: int
    kind: EntryKind
    delta: int
    balance_after: int
    day: date
    order_id: int | None
    shortfall: Annotated[
        int,
        Meta(
            description="A reversal's or retake's points the buyer had already spent (not "
            "taken); on `purchase_restore`, earlier shortfall cancelled (not credited)"
        ),
    ]
    created_at: datetime


class EntryPage(Model):
    items: list[Entry]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page")]


async def action(call: Call[ActionBody, None]) -> ActionResult:
    """Earn points: the daily check-in, or sharing goods.

    Unknown actions answer 400 `unknown_action`; a repeat answers `credited: false`.
    """
    b = call.body
    if b.action not in earning.ACTIONS:
        raise ValidationError("action", f"unknown action; one of {', '.join(earning.ACTIONS)}",
                              code="unknown_action")  # fmt: skip
    cfg = call.app[keys.SETTINGS].points
    async with call.app[keys.PG_POOL].acquire() as conn:
        if b.action == "checkin":
            if b.goods_id is not None:
                raise ValidationError("goods_id", "not used by checkin")
            result = await earning.checkin(conn, cfg, call.user_id)
        else:
            if b.goods_id is None:
                raise ValidationError("goods_id", "is required")
            result = await earning.share(conn, cfg, call.user_id, b.goods_id)
    return to(ActionResult, result)


async def balance(call: Call[None, None]) -> Balance:
    """The caller's spendable points."""
    return Balance(balance=await reading.balance(call.app[keys.PG_POOL], call.user_id))


async def expiring(call: Call[None, ExpiringQuery]) -> Expiring:
    """Lots of the caller's points expiring soon."""
    days = call.query.days or call.app[keys.SETTINGS].points.expiring_soon_days
    lots = await reading.expiring(call.app[keys.PG_POOL], call.user_id, timedelta(days=days))
    return to(Expiring, {"days": days, "lots": lots, "points": sum(x["points"] for x in lots)})


async def history(call: Call[None, HistoryQuery]) -> EntryPage:
    """The caller's ledger entries, newest first, in keyset pages."""
    q = call.query
    secret = call.app[keys.SETTINGS].secret
    scope = f"points:{call.user_id}"
    after = cursors.decode(secret, scope, q.cursor, [])
    items, next_id = await reading.history(call.app[keys.PG_POOL], call.user_id, limit=q.limit,
                                          after_id=after)  # fmt: skip
    next_cursor = None if next_id is None else cursors.encode(secret, scope, next_id, [])
    return to(EntryPage, {"items": items, "next_cursor": next_cursor})


async def checkout(call: Call[CheckoutBody, None]) -> Reply[PointsOrder]:
    """Create an order paying part of it with points, atomically (201 new, 200 a replay).

    409 insufficient_points rolls the order back too.
    """
    b = call.body
    quantity_allowed(call, b.quantity)
    settings = call.app[keys.SETTINGS]
    async with call.app[keys.PG_POOL].acquire() as conn:
        order, created = await checkout_service.checkout(
            conn, settings.points, user_id=call.user_id, goods_id=b.goods_id,
            quantity=b.quantity, points_to_spend=b.points, idempotency_key=call.idempotency_key,
            payment_timeout_seconds=settings.orders.payment_timeout_seconds,
        )  # fmt: skip
    if created:
        call.app[keys.ORDER_REAPER].poke()
    return Reply(to(PointsOrder, order), status=201 if created else 200)
