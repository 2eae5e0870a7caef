"""Console sign-in sessions: the cookie, and the CSRF token bound to it.

The session cookie holds a signed host token (:mod:`livecommerce.auth.tokens`), so every API
route that takes a host bearer token takes the session too. A request authenticated by the
cookie that changes state must also send ``X-CSRF-Token``: an HMAC of the cookie's value that
only pages of this origin can read (from the sign-in answer or ``GET /api/console/session``).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from livecommerce.auth.tokens import Claims

COOKIE = "lc_session"
# An agent's session (customer service) is its own cookie: a host and one of their agents can
# be signed in side by side in one browser.
AGENT_COOKIE = "lc_agent_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where a request's token came from: the ``Authorization`` header, or one of the two cookies.
BEARER = "bearer"
# Set by ``console/session_guard.py`` on a request presenting a session that ended — signed out
# (``auth/revocation.py``), or a host's or agent's session issued for an older password (an
# agent token without a password version): token source
# (``BEARER``, ``COOKIE``, ``AGENT_COOKIE``) -> why. ``require_claims`` refuses the token it
# would use from such a source with 401 ``session_revoked``.
REVOKED = web.RequestKey("session_revoked", dict[str, str])
# Set by ``console/session_guard.py``: each token it verified for the request -> its claims, so
# ``require_claims`` does not verify (HMAC, base64, JSON) the same token a second time.
VERIFIED = web.RequestKey("verified_tokens", dict[str, Claims])


def csrf_token(secret: str, session: str) -> str:
    """The CSRF token of a session cookie value (64 hex characters)."""
    return hmac.new(f"csrf|{secret}".encode(), session.encode(), hashlib.sha256).hexdigest()


def cookie_for(kinds: tuple[str, ...]) -> str:
    """The session cookie a route taking ``kinds`` of token reads: the agent cookie for
    agent-only routes, the console's otherwise."""
    return AGENT_COOKIE if kinds == ("agent",) else COOKIE


def csrf_ok(secret: str, session: str, sent: str) -> bool:
    """Whether ``sent`` is the CSRF token of ``session`` (constant time)."""
    # bytes: compare_digest raises TypeError on a non-ASCII str (a header sent by anyone)
    return hmac.compare_digest(
        csrf_token(secret, session).encode(), sent.encode("utf-8", "surrogatepass")
    )


def session_cookie(value: str, max_age: int, *, secure: bool, name: str = COOKIE) -> str:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, whole site, Secure unless development.
    ``max_age=0`` with an empty value signs out."""
    cookie = f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
    return cookie + "; Secure" if secure else cookie
