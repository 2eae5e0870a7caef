"""The social-commerce route table and its resources (stock gate, sender, worker).

``setup(app)`` is called once from ``create_app``, after the commerce routes (it uses their
PostgreSQL pool, Redis client and WeChat client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.social import events, flashsale_api, groups_api, points_api
from livecommerce.social.flashsale import FlashStock
from livecommerce.social.worker import SocialWorker


async def social_ctx(app: web.Application) -> AsyncIterator[None]:
    """The flash-sale stock gate and the social worker task."""
    settings = app[keys.SETTINGS]
    stock = FlashStock(app[keys.REDIS], settings.flash_sale)
    app[keys.FLASH_STOCK] = stock
    worker = SocialWorker(app[keys.PG_POOL], settings, events.Deps(settings, stock))
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
    r = app.router
    r.add_post("/api/host/flash-sales", flashsale_api.create)
    r.add_get("/api/flash-sales/{id}", flashsale_api.read)
    r.add_post("/api/flash-sales/{id}/buy", flashsale_api.buy)
    r.add_post("/api/host/flash-sales/{id}/push", flashsale_api.push)
    r.add_post("/api/points/actions", points_api.action)
    r.add_get("/api/points", points_api.balance)
    r.add_get("/api/points/expiring", points_api.expiring)
    r.add_get("/api/points/history", points_api.history)
    r.add_post("/api/points/checkout", points_api.checkout)
    r.add_post("/api/host/group-offers", groups_api.create_offer)
    r.add_post("/api/group-offers/{id}/groups", groups_api.open_group)
    r.add_post("/api/groups/{id}/join", groups_api.join)
    r.add_get("/api/groups/{id}", groups_api.read)
    r.add_get("/api/goods/{id}/groups", groups_api.list_for_goods)
