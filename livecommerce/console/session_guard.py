"""A password reset ends the host's console sessions (on every node, at once).

A session's host token carries ``sv``, the host's password version when it signed in
(``hosts.password_changed_at`` in microseconds). For each ``/api/`` request whose token (the
session cookie, or the same token sent as a bearer) has one, this middleware reads the host's
current version from PostgreSQL (one primary-key lookup) and, when it differs, flags the request:
``require_claims`` then answers 401 ``session_revoked``. Only flagged — routes that need no
credentials (sign-in again, public lists) are unaffected. Tokens without ``sv`` (``livecommerce
host-token``, bearer integrations) are not sessions and are not touched by a reset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from livecommerce import keys
from livecommerce.auth import session
from livecommerce.auth.tokens import verify_token
from livecommerce.console import hosts
from livecommerce.errors import Unauthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _token(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if header is None:
        return request.cookies.get(session.COOKIE, "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@web.middleware
async def session_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Flag a request carrying a session issued for an older password (module docstring)."""
    token = _token(request) if request.path.startswith("/api/") else ""
    if token:
        try:
            claims = verify_token(request.app[keys.SETTINGS].secret, token)
        except Unauthorized:
            claims = None  # require_claims answers it, if the route needs credentials
        if claims is not None and claims.kind == "host" and claims.session is not None:
            current = await hosts.password_version(request.app[keys.PG_POOL], int(claims.subject))
            if current != claims.session:
                request[session.REVOKED] = True
    return await handler(request)
