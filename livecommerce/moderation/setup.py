"""Wiring: the moderator on the viewer endpoint's comment path, and the moderation routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce import keys
from livecommerce.api.contract import HOST, add_routes, route
from livecommerce.moderation import moderation_api as api
from livecommerce.moderation.comments import Gate, Moderator

MODERATOR = web.AppKey("moderator", Moderator)

ROUTES = (
    route("GET", "/api/rooms/{room_id}/moderation", api.get_moderation, auth=HOST,
          tag="moderation"),
    route("PATCH", "/api/rooms/{room_id}/moderation", api.update_moderation, auth=HOST,
          tag="moderation"),
    route("GET", "/api/rooms/{room_id}/mutes", api.list_mutes, auth=HOST, tag="moderation"),
    route("POST", "/api/rooms/{room_id}/mutes", api.mute, auth=HOST, tag="moderation"),
    route("DELETE", "/api/rooms/{room_id}/mutes", api.unmute, auth=HOST, tag="moderation"),
    route("GET", "/api/rooms/{room_id}/held-comments", api.list_held, auth=HOST,
          tag="moderation"),
    route("POST", "/api/rooms/{room_id}/held-comments/{held_id}/approve", api.approve_held,
          auth=HOST, tag="moderation", errors=(409,)),
    route("POST", "/api/rooms/{room_id}/held-comments/{held_id}/reject", api.reject_held,
          auth=HOST, tag="moderation", errors=(409,)),
)  # fmt: skip


async def moderation_ctx(app: web.Application) -> AsyncIterator[None]:
    """This node's moderator (after realtime and the WeChat client exist); on stop, the
    check queue drains (bounded) before the pools close."""
    moderator = Moderator(
        gate=Gate(app[keys.REDIS], app[keys.PG_POOL]),
        broker=app[keys.BROKER],
        pool=app[keys.PG_POOL],
        wechat=app.get(keys.WECHAT_CLIENT),
    )
    app[MODERATOR] = moderator
    endpoint = app.get(keys.VIEWER_ENDPOINT)
    if endpoint is not None:
        endpoint.moderator = moderator.screen
    try:
        yield
    finally:
        if endpoint is not None:
            endpoint.moderator = None
        await moderator.close()


def setup(app: web.Application) -> None:
    """Add the moderation cleanup context and routes (after realtime and commerce)."""
    app.cleanup_ctx.append(moderation_ctx)
    add_routes(app, ROUTES)
