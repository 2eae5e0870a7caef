"""The console's route table: pages, sign-in session, admin, host orders, the rooms list."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.api import contract, openapi
from livecommerce.api.contract import HOST, USER, RawResponse, raw_route, route
from livecommerce.auth import revocation
from livecommerce.console import (
    admin_api,
    dev_pay_api,
    moderation_api,
    pages,
    session_api,
    session_guard,
)
from livecommerce.moderation import setup as moderation_setup
from livecommerce.rooms import list_api

CURSOR_RULE = "the cursor was not issued by this server for the same filters"
HTML = (RawResponse(200, "An HTML page", "text/html"),)

ROUTES = (
    raw_route("GET", "/", pages.root, tag="pages", responses=HTML),
    raw_route("GET", "/console", pages.console_page, tag="pages", responses=HTML),
    raw_route("GET", "/live", pages.live_list_page, tag="pages", responses=HTML),
    raw_route("GET", "/live/{room_id}", pages.live_page, tag="pages", responses=(
        *HTML, RawResponse(404, "Not a room id", "application/json", openapi.Error),
    )),
    raw_route("GET", "/static/{name}", pages.asset, tag="pages", responses=(
        RawResponse(200, "A page asset (CSS, JavaScript module, image)", "text/plain"),
        RawResponse(404, "No such asset", "application/json", openapi.Error),
    )),
    route("POST", "/api/console/session", session_api.sign_in, status=201, tag="console",
          errors=(401, 403, 429)),
    route("GET", "/api/console/session", session_api.current, auth=HOST, tag="console",
          errors=(404,)),
    route("DELETE", "/api/console/session", session_api.sign_out, auth=HOST, tag="console"),
    route("POST", "/api/admin/hosts", admin_api.create_host, admin=True, status=201,
          tag="admin", errors=(409,)),
    route("POST", "/api/admin/hosts/{host_id}/password", admin_api.reset_password, admin=True,
          tag="admin"),
    route("GET", "/api/rooms", list_api.list_, tag="rooms", rules=(CURSOR_RULE,)),
    route("DELETE", "/api/rooms/{room_id}/comments/{seq}", moderation_api.delete_comment,
          auth=HOST, tag="rooms"),
)  # fmt: skip


# Development mode only: pay through the fake WeChat Pay from the audience page.
DEV_ROUTES = (
    route("POST", "/api/dev/orders/{id}/pay", dev_pay_api.dev_pay, auth=USER, tag="orders",
          errors=(409, 502)),
)  # fmt: skip


async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    """This node's purge of expired sign-out records (at start, then hourly)."""
    async with running(revocation.purge_forever(app[keys.PG_POOL]), "session-revocation-purge"):
        yield


def setup(app: web.Application) -> None:
    """Add the console routes (called once from ``create_app``, after commerce's)."""
    dev = not app[keys.SETTINGS].production
    contract.add_routes(app, ROUTES + DEV_ROUTES if dev else ROUTES)
    app.middlewares.append(session_guard.session_guard)  # sign-out, a password reset end sessions
    app.cleanup_ctx.append(sessions_ctx)
    moderation_setup.setup(app)  # mutes, room mute, blocked words, content check, held comments
