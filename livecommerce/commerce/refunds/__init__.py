"""Refunds owed to buyers (migration 0010): creating them, their states, the buyer's notices.

A refund row is created in the transaction that decides the money goes back: by the
``payments_refund_required`` trigger for a payment marked ``refund_required`` (a double
payment, a late payment whose stock is gone, a failed group, a released flash-sale unit, an
approved after-sales request) or by :func:`goodwill` for a host's full or partial refund. The
refund worker (:mod:`refund_worker`) then asks WeChat Pay with the row's fixed
``out_refund_no``; notifications and queries move it::

    pending --WeChat accepted--> processing --notification / query--> success | abnormal | closed
       (transient failures: retried with exponential backoff, same out_refund_no)
    abnormal --WeChat reports it settled (after the merchant's manual handling)--> success | closed

Every state write is a conditional UPDATE from the states it may leave, so a replayed
notification or a query racing a notification applies once; the buyer's notices are outbox
rows with a dedupe key per refund and event.

**Closed** (WeChat Pay v3 ``CLOSED``: the buyer was *not* paid back — WeChat closes a refund
left processing for 7 days without enough merchant balance — and that ``out_refund_no`` is
final) is handled by :func:`close`, in one transaction: the refund stops counting as refunded
(every sum skips ``closed``), then

* an order the closed refund had left ``refunded`` by a host's decision (a goodwill refund of
  all that was left, an approved after-sales request) — not a flash-sale order, whose released
  unit may have been sold again (it would be oversold) — goes back to where it was — ``paid``,
  ``shipped`` or ``completed`` (a ``paid`` one takes its stock again if it was restocked) — so
  the host can refund it again (goodwill, or approving the buyer's new request);
* a refund the shop owes whatever the host decides (a second payment of an order, a failed
  group, a late payment whose stock is gone, a flash-sale order whose unit was released, even by
  the host's refund) is re-issued: a new
  row (new ``out_refund_no``, ``reissue_of``) that the worker requests after a backoff;
* a partial goodwill refund of an order that stays paid is only reported: the host decides;
* the buyer gets a ``refund_closed`` notice, and the order event ``refund_closed`` (migration
  0024) gives back the purchase points the refund had reversed, once.

**Abnormal** (``ABNORMAL``: the money left the merchant account but the buyer's card or account
refused it) still counts as refunded and waits for the merchant to settle it by hand in the
merchant platform (or WeChat's apply-abnormal-refund API); a later SUCCESS or CLOSED that WeChat
reports for it is applied.

The package's modules:

* :mod:`~livecommerce.commerce.refunds.reading` — a refund row: its columns, its
  ``out_refund_no``, its JSON, the refunds of an order; the worker's wake-up channel;
* :mod:`~livecommerce.commerce.refunds.creating` — a host's full or partial refund
  (:func:`goodwill`);
* :mod:`~livecommerce.commerce.refunds.settling` — the states: moving a refund as WeChat Pay
  reports it (:func:`set_state`), closing it and what follows (:func:`close`), the buyer's
  notices.

The public names are re-exported here, so ``refunds.<name>`` keeps working.
"""

from __future__ import annotations

from livecommerce.commerce.refunds.creating import goodwill
from livecommerce.commerce.refunds.reading import (
    COLUMNS,
    WAKE_CHANNEL,
    list_for_order,
    out_refund_no,
    parse_out_refund_no,
    to_json,
)
from livecommerce.commerce.refunds.settling import (
    ABNORMAL_NOTE,
    CLOSED_NOTE,
    FINAL,
    HOST_DECIDED,
    Closed,
    close,
    set_state,
)

__all__ = [
    "ABNORMAL_NOTE",
    "CLOSED_NOTE",
    "COLUMNS",
    "FINAL",
    "HOST_DECIDED",
    "WAKE_CHANNEL",
    "Closed",
    "close",
    "goodwill",
    "list_for_order",
    "out_refund_no",
    "parse_out_refund_no",
    "set_state",
    "to_json",
]
