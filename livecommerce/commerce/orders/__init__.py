"""Orders: creation with atomic stock reservation, the state machine, and auto-cancel.

States and who moves them (every move is one conditional ``UPDATE ... WHERE status = <from>``;
0 rows means "not in that state" and becomes 404 or 409, never a silent double move)::

    pending_payment --pay notification--> paid --host ships--> shipped --buyer confirms--> completed
                                                    (needs the order's shipping address)
         |  buyer cancels / payment timeout                 (a late payment re-takes stock:
         v                                                   cancelled -> paid, or if sold out
     cancelled ----------- late payment, stock gone -------> refunded)

    paid | shipped | completed --host refunds all / approves after-sales--> refunded
    refunded --WeChat Pay closed that refund (not paid back)--> back where it was
                                                          (refunds.close; host-decided only)

Stock: an order holds ``quantity`` units from creation (``UPDATE goods SET stock = stock - q
WHERE stock >= q``: never negative, never oversold) until it is cancelled, which gives them back.
Lock order is always order row, then goods row (payments, cancels, the reaper) or goods row
alone (create), so these paths cannot deadlock each other.

* :mod:`~livecommerce.commerce.orders.reading` — the order row (columns, JSON, the merchant
  order number), the buyer's orders, the host's orders with their refund issues;
* :mod:`~livecommerce.commerce.orders.creating` — creating an order: the stock reservation,
  the Idempotency-Key replay, the total's limit (``MAX_TOTAL_FEN``);
* :mod:`~livecommerce.commerce.orders.transitions` — the buyer's and the host's moves:
  address, cancel, confirm receipt, ship;
* :mod:`~livecommerce.commerce.orders.expiry` — auto-cancel: the reaper's sweep of unpaid
  orders past their deadline, and the next deadline.

The public names are re-exported here, so ``orders.<name>`` keeps working.
"""

from __future__ import annotations

from livecommerce.commerce.orders.creating import MAX_TOTAL_FEN, create_order, replayed
from livecommerce.commerce.orders.expiry import expire_due, seconds_to_next_deadline
from livecommerce.commerce.orders.reading import (
    COLUMNS,
    HOST_VIEWS,
    MAX_PAGE,
    STATUSES,
    get_order,
    list_host_orders,
    list_orders,
    out_trade_no,
    parse_out_trade_no,
    refund_issues,
    to_json,
)
from livecommerce.commerce.orders.transitions import (
    cancel_order,
    confirm_received,
    set_address,
    ship_order,
)

__all__ = [
    "COLUMNS",
    "HOST_VIEWS",
    "MAX_PAGE",
    "MAX_TOTAL_FEN",
    "STATUSES",
    "cancel_order",
    "confirm_received",
    "create_order",
    "expire_due",
    "get_order",
    "list_host_orders",
    "list_orders",
    "out_trade_no",
    "parse_out_trade_no",
    "refund_issues",
    "replayed",
    "seconds_to_next_deadline",
    "set_address",
    "ship_order",
    "to_json",
]
