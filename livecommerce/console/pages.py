"""The console and audience pages: static HTML/CSS/ES modules from ``console/static``.

``/console`` (host console), ``/live`` (live rooms) and ``/live/{room_id}`` (audience page) are
HTML documents; ``/static/{name}`` serves their assets — a fixed set of files, never a path from
the request. The audience page's socket client is the mini-program's own
``clients/miniprogram/livecommerce-socket.js`` (``static/livecommerce-socket.js`` is a link to
it), so both speak the protocol and resume with the same code.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from livecommerce.api.contract import MAX_ID
from livecommerce.errors import NotFound

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# Same-origin only: scripts, styles, sockets and images from this server (covers: any https).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: https:; media-src 'self' https:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _file(name: str) -> web.Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise NotFound("no such file")
    kind = TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.Response(
        body=path.read_bytes(),
        content_type=kind,
        charset="utf-8" if kind.startswith("text/") else None,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def _page(name: str) -> web.Response:
    resp = _file(name)
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


async def console_page(request: web.Request) -> web.Response:
    """The host console (sign-in, rooms, goods shelf, pushes, timeline, orders, live panel)."""
    return _page("console.html")


async def live_list_page(request: web.Request) -> web.Response:
    """The audience's list of live rooms."""
    return _page("live-list.html")


async def live_page(request: web.Request) -> web.Response:
    """The audience page of one room (behaves like the mini-program); 404 for a bad id."""
    room = request.match_info["room_id"]
    if not (room.isascii() and room.isdigit() and 0 < int(room) <= MAX_ID):
        raise NotFound("no such room", code="room_not_found")
    return _page("live.html")


async def root(request: web.Request) -> web.Response:
    """A small index pointing at the console, the live rooms and the API reference."""
    return _page("index.html")


async def asset(request: web.Request) -> web.Response:
    """One static asset of the pages (CSS, JavaScript module, image)."""
    return _file(request.match_info["name"])


async def agent_page(request: web.Request) -> web.Response:
    """The customer-service agent workspace (sign-in, queue, conversations, canned replies)."""
    return _page("agent.html")
