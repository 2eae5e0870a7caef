"""The points ledger: check-in, share and purchase credits, spending, refunds, expiry.

* :mod:`~livecommerce.social.points.ledger` — the core: the account lock, immutable entries
  with idempotency keys, credits and debits of expiring lots (the model is described there);
* :mod:`~livecommerce.social.points.earning` — check-in, share, the credit for a paid order;
* :mod:`~livecommerce.social.points.spending` — spending on an order and its discount (fen),
  giving spent points back and taking them again;
* :mod:`~livecommerce.social.points.reversals` — refunds: the purchase credit reversed, and
  given back when a refund is closed;
* :mod:`~livecommerce.social.points.reading` — balance, expiring lots, history;
* :mod:`~livecommerce.social.points.expiry` — the job retiring expired lots.

The public functions are re-exported here, so ``points.<name>`` keeps working.
"""

from __future__ import annotations

from livecommerce.social.points.earning import (
    ACTIONS,
    checkin,
    credit_purchase,
    purchase_points,
    share,
)
from livecommerce.social.points.expiry import expire_due, seconds_to_next_expiry
from livecommerce.social.points.ledger import local_day, now
from livecommerce.social.points.reading import (
    MAX_PAGE,
    balance,
    entry_json,
    expiring,
    history,
    require_user,
)
from livecommerce.social.points.reversals import (
    restore_for_closed_refund,
    reverse_for_refund,
    reverse_purchase,
)
from livecommerce.social.points.spending import (
    discount_for,
    restore_spend,
    retake_spend_restore,
    spend,
)

__all__ = [
    "ACTIONS",
    "MAX_PAGE",
    "balance",
    "checkin",
    "credit_purchase",
    "discount_for",
    "entry_json",
    "expire_due",
    "expiring",
    "history",
    "local_day",
    "now",
    "purchase_points",
    "require_user",
    "restore_for_closed_refund",
    "restore_spend",
    "retake_spend_restore",
    "reverse_for_refund",
    "reverse_purchase",
    "seconds_to_next_expiry",
    "share",
    "spend",
]
