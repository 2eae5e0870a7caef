"""The social-commerce route table and its resources (stock gate, sender, worker).

``setup(app)`` is called once from ``create_app``, after the commerce routes (it uses their
PostgreSQL pool, Redis client and WeChat client).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.api.contract import HOST, USER, add_routes, route
from livecommerce.social import events, flashsale_api, groups_api, offers, offers_api, points_api
from livecommerce.social.flashsale import FlashStock
from livecommerce.social.worker import SocialWorker


async def social_ctx(app: web.Application) -> AsyncIterator[None]:
    """The flash-sale stock gate and the social worker task."""
    settings = app[keys.SETTINGS]
    stock = FlashStock(app[keys.REDIS], settings.flash_sale)
    app[keys.FLASH_STOCK] = stock
    announce = functools.partial(offers.announce, app[keys.PG_POOL], app[keys.BROKER])
    worker = SocialWorker(app[keys.PG_POOL], settings, events.Deps(settings, stock, announce))
    app[keys.SOCIAL_WORKER] = worker
    listener = await worker.listen()
    try:
        async with running(worker.run(), "social-worker"):
            yield
    finally:
        if listener is not None:
            await listener.close()


def setup(app: web.Application) -> None:
    """Add the social routes and cleanup context."""
    app.cleanup_ctx.append(social_ctx)
    add_routes(app, ROUTES)


ROUTES = (
    route("POST", "/api/host/flash-sales", flashsale_api.create, auth=HOST, status=201,
          errors=(404, 409), tag="flash sales",
          rules=(
              "`ends_at` is not after `starts_at`, or a time is outside the years 2000-2100",
              "`per_user_limit` is above `flash_sale.max_per_user_limit` (config)",
              "`sale_price_fen` x `per_user_limit` exceeds 2147483647 fen (`amount_too_large`)",
          )),
    route("GET", "/api/flash-sales/{id}", flashsale_api.read, tag="flash sales"),
    route("POST", "/api/flash-sales/{id}/buy", flashsale_api.buy, auth=USER, status=201,
          also=(200,), errors=(409,), idempotency_key=True, tag="flash sales",
          rules=(
              "`quantity` is above `flash_sale.max_per_user_limit` (config)",
          )),
    route("POST", "/api/host/flash-sales/{id}/push", flashsale_api.push, auth=HOST,
          status=201, errors=(409,), tag="flash sales"),
    route("POST", "/api/points/actions", points_api.action, auth=USER, tag="points",
          rules=(
              "`share` needs an existing `goods_id`; `checkin` takes none",
          )),
    route("GET", "/api/points", points_api.balance, auth=USER, tag="points"),
    route("GET", "/api/points/expiring", points_api.expiring, auth=USER, tag="points"),
    route("GET", "/api/points/history", points_api.history, auth=USER, tag="points",
          rules=(
              "the cursor was not issued by this server for the same filters",
          )),
    route("POST", "/api/points/checkout", points_api.checkout, auth=USER, status=201,
          also=(200,), errors=(404, 409), idempotency_key=True, tag="points",
          rules=(
              "`quantity` is above `orders.max_quantity` (config)",
              "`points` is more than the balance or the order's points limit allows",
              "the order total exceeds 2147483647 fen, WeChat Pay's limit (`amount_too_large`)",
          )),
    route("POST", "/api/host/group-offers", groups_api.create_offer, auth=HOST, status=201,
          errors=(404,), tag="groups"),
    route("POST", "/api/group-offers/{id}/groups", groups_api.open_group, auth=USER,
          status=201, also=(200,), errors=(409,), idempotency_key=True, tag="groups",
          rules=(
              "the order total exceeds 2147483647 fen, WeChat Pay's limit (`amount_too_large`)",
          )),
    route("POST", "/api/groups/{id}/join", groups_api.join, auth=USER, status=201, also=(200,),
          errors=(409,), idempotency_key=True, tag="groups",
          rules=(
              "the order total exceeds 2147483647 fen, WeChat Pay's limit (`amount_too_large`)",
          )),
    route("GET", "/api/groups/{id}", groups_api.read, tag="groups"),
    route("GET", "/api/goods/{id}/groups", groups_api.list_for_goods, tag="groups"),
    route("GET", "/api/group-offers/{id}", offers_api.read_group_offer, errors=(404,),
          tag="groups"),
    route("POST", "/api/host/group-offers/{id}/push", offers_api.push_group_offer, auth=HOST,
          status=201, errors=(409,), tag="groups"),
    route("GET", "/api/host/group-offers", offers_api.host_group_offers, auth=HOST,
          tag="groups"),
    route("GET", "/api/host/flash-sales", offers_api.host_flash_sales, auth=HOST,
          tag="flash sales"),
)  # fmt: skip
