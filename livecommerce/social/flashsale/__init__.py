"""Flash sales (秒杀): a Redis stock gate in front of the PostgreSQL order flow.

A purchase attempt runs one Lua script (``lua/flashsale_take.lua``) that checks the sale window
(Redis server time), a replayed Idempotency-Key, the buyer's per-user limit and the stock, and
only when all pass decrements the stock and records a *claim* (id = user + key). The order is
then persisted in PostgreSQL through :func:`orders.create_order` at the sale price, behind two
conditional guards — ``flash_sales.sold + q <= stock`` and the buyer's units ``<= limit`` — so
PostgreSQL never oversells even if Redis were wrong. If persisting fails for any reason
(including cancellation), the claim is returned (``flashsale_return.lua``: at most once).

Stock comes back when an order of the sale is cancelled, times out unpaid or is refunded: the
order-event worker calls :func:`release` (PostgreSQL counters + the claim, once per order).
PostgreSQL is the source of truth: when the sale's Redis keys are missing (new sale, Redis
restart or flush, expiry after the end), :func:`reconcile` rebuilds them from ``sold``, the
buyers' units and the live claims, and the first node to load wins.

* :mod:`~livecommerce.social.flashsale.stock` — the Redis side (:class:`FlashStock`): the take,
  return and load scripts, the claims' times, the stock left;
* :mod:`~livecommerce.social.flashsale.loading` — :func:`reconcile`: the sale's Redis keys
  rebuilt from PostgreSQL (single flight per sale on a node);
* :mod:`~livecommerce.social.flashsale.reading` — the sale's row and JSON, :func:`get_sale`;
* :mod:`~livecommerce.social.flashsale.creating` — :func:`create_sale`;
* :mod:`~livecommerce.social.flashsale.buying` — a purchase attempt (:func:`buy`): the take,
  the order written by ``lc_flash_buy``, replays, the claim returned on failure;
* :mod:`~livecommerce.social.flashsale.returns` — stock given back: an order's units released
  (:func:`release`), stale claims swept (:func:`sweep_stale_claims`);
* :mod:`~livecommerce.social.flashsale.rooms` — the sale pushed to a live room, its stock left
  announced to the rooms showing it.

The public names are re-exported here, so ``flashsale.<name>`` keeps working.
"""

from __future__ import annotations

from livecommerce.social.flashsale.buying import REFUSALS, Purchase, buy, claim_id
from livecommerce.social.flashsale.creating import create_sale
from livecommerce.social.flashsale.loading import reconcile
from livecommerce.social.flashsale.reading import SALE_COLUMNS, get_sale, sale_json
from livecommerce.social.flashsale.returns import release, sweep_stale_claims
from livecommerce.social.flashsale.rooms import announce_stock, push_to_room
from livecommerce.social.flashsale.stock import FlashStock, Take

__all__ = [
    "REFUSALS",
    "SALE_COLUMNS",
    "FlashStock",
    "Purchase",
    "Take",
    "announce_stock",
    "buy",
    "claim_id",
    "create_sale",
    "get_sale",
    "push_to_room",
    "reconcile",
    "release",
    "sale_json",
    "sweep_stale_claims",
]
