"""Group buying (拼团): offers, groups, members, and their moves on order events.

A buyer opens a group by ordering at the group price (the group is ``pending`` and not
joinable until that order is paid, then ``open`` for the offer's fill time). Others join
through the group id: a join takes a *seat* with one conditional UPDATE
(``seats < size AND status = 'open' AND expires_at > now()``) in the same transaction as the
member row and the order, so a group can never hold more than ``size`` members — pending or
paid. An unpaid member's cancel or timeout frees the seat.

The order-event worker applies payments: under the group's row lock a paid member is counted,
and the payment that makes ``paid = size`` flips the group to ``succeeded`` and — in that same
transaction, exactly once — queues one success notification per member. Open groups past
their time are failed by :func:`expire_due` (``FOR UPDATE SKIP LOCKED``, any number of nodes):
pending orders are cancelled and paid ones refunded, and every member gets one ``group_failed``
notice saying which (queued in that same transaction). A payment that arrives for a group that
is no longer open, or for a member whose seat was freed, is refunded.

Lock order: group row, then order row, then goods row.

* :mod:`~livecommerce.social.groups.offering` — a host's group offer on its goods;
* :mod:`~livecommerce.social.groups.opening` — opening a group (the leader's order);
* :mod:`~livecommerce.social.groups.joining` — joining an open group (a seat, a member, an order);
* :mod:`~livecommerce.social.groups.membership` — what opening and joining share: the
  Idempotency-Key replay and the one-open-group-per-offer rule;
* :mod:`~livecommerce.social.groups.order_events` — the moves on paid, cancelled, refunded and
  refund-closed orders;
* :mod:`~livecommerce.social.groups.failure` — failing a group: cancels, refunds, notices;
* :mod:`~livecommerce.social.groups.expiry` — the job failing open groups past their time;
* :mod:`~livecommerce.social.groups.reading` — a group with its members, a goods' open groups.

The public functions are re-exported here, so ``groups.<name>`` keeps working.
"""

from __future__ import annotations

from livecommerce.social.groups.expiry import expire_due, seconds_to_next_deadline
from livecommerce.social.groups.failure import fail_group
from livecommerce.social.groups.joining import join_group
from livecommerce.social.groups.offering import create_offer, offer_json
from livecommerce.social.groups.opening import open_group
from livecommerce.social.groups.order_events import (
    on_cancelled,
    on_paid,
    on_refund_closed,
    on_refunded,
)
from livecommerce.social.groups.reading import GROUP_STATUSES, MAX_LIST, get_group, list_open

__all__ = [
    "GROUP_STATUSES",
    "MAX_LIST",
    "create_offer",
    "expire_due",
    "fail_group",
    "get_group",
    "join_group",
    "list_open",
    "offer_json",
    "on_cancelled",
    "on_paid",
    "on_refund_closed",
    "on_refunded",
    "open_group",
    "seconds_to_next_deadline",
]
