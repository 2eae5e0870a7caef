"""Reading the caller's token from an HTTP request."""

from __future__ import annotations

import hmac

from aiohttp import web

from livecommerce import keys
from livecommerce.auth import session
from livecommerce.auth.tokens import Claims, Kind, verify_token
from livecommerce.errors import Forbidden, Unauthorized


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token", code="missing_token")
    return token.strip()


def require_admin(request: web.Request) -> None:
    """Raise unless the request carries ``Authorization: Bearer <security.admin_token>`` (the
    admin routes: ``route(..., admin=True)``; no session cookie stands in for it).

    Raises:
        Unauthorized: no bearer token (``bad_admin_token``; as every route answers a request
            without credentials), or another one than the admin token.
        Forbidden: a bearer token while no admin token is configured (``admin_disabled``): the
            admin API is off, no token can open it.
    """
    expected = request.app[keys.SETTINGS].security.admin_token
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    sent = sent.strip() if scheme.lower() == "bearer" else ""
    if not sent:
        raise Unauthorized("admin token required", code="bad_admin_token")
    if not expected:
        raise Forbidden("the admin API is disabled (security.admin_token)", code="admin_disabled")
    if not hmac.compare_digest(_utf8(sent), _utf8(expected)):
        raise Unauthorized("admin token required", code="bad_admin_token")


def _utf8(text: str) -> bytes:
    """``text`` as bytes: ``hmac.compare_digest`` raises TypeError on non-ASCII ``str``."""
    return text.encode("utf-8", "surrogatepass")


def require_claims(request: web.Request, *kinds: Kind) -> Claims:
    """The verified claims of the request's bearer token, which must be one of ``kinds``.

    Without an ``Authorization`` header, the console's session cookie (the agent's, for
    agent-only routes) stands in for it (:mod:`livecommerce.auth.session`); then a
    state-changing method needs ``X-CSRF-Token``.

    Raises:
        Unauthorized: no token, a bad or expired one, a session that was signed out or (a
            console or agent session) revoked by a new password (``session_revoked``, flagged
            by ``console/session_guard.py``).
        Forbidden: a valid token of another kind (a viewer calling a host action), or a
            cookie-authenticated write without its CSRF token (code ``csrf_failed``).
    """
    secret = request.app[keys.SETTINGS].secret
    source = session.cookie_for(kinds)
    cookie = request.cookies.get(source, "")
    by_cookie = bool(cookie) and "Authorization" not in request.headers
    if not by_cookie:
        source = session.BEARER
    token = cookie if by_cookie else bearer_token(request)
    claims = request.get(session.VERIFIED, {}).get(token) or verify_token(secret, token)
    why = request.get(session.REVOKED, {}).get(source)
    if why is not None:
        raise Unauthorized(f"the session ended: {why}", code="session_revoked")
    if (
        by_cookie
        and request.method not in session.SAFE_METHODS
        and not session.csrf_ok(secret, cookie, request.headers.get(session.CSRF_HEADER, ""))
    ):
        raise Forbidden("missing or wrong X-CSRF-Token", code="csrf_failed")
    if kinds and claims.kind not in kinds:
        names = " or ".join(kinds)
        article = "an" if names[0] in "aeiou" else "a"
        raise Forbidden(f"this action needs {article} {names} token", code="wrong_role")
    return claims
