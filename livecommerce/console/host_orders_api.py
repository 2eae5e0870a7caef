"""HTTP: the host's orders (host token or console session), for the console's orders list."""

from __future__ import annotations

from livecommerce import keys
from livecommerce.api.contract import Call, to
from livecommerce.commerce import cursors
from livecommerce.commerce.orders_api import OrderListQuery, OrderPage
from livecommerce.console.host_orders import list_host_orders


async def list_host(call: Call[None, OrderListQuery]) -> OrderPage:
    """The host's orders (of its goods), newest first, in keyset pages (optionally one status)."""
    q = call.query
    secret = call.app[keys.SETTINGS].secret
    scope = f"host-orders:{call.host_id}"
    after = cursors.decode(secret, scope, q.cursor, [q.status])
    items, next_id = await list_host_orders(
        call.app[keys.PG_POOL], call.host_id, limit=q.limit, after_id=after, status=q.status
    )
    next_cursor = None if next_id is None else cursors.encode(secret, scope, next_id, [q.status])
    return to(OrderPage, {"items": items, "next_cursor": next_cursor})
