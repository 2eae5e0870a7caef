"""Ended sessions stop working on every node at once: signed out, or (a host's console session)
issued for an older password.

A console session's host token carries ``sv``, the host's password version when it signed in
(``hosts.password_changed_at`` in microseconds); a console or agent session's token carries
``sid``, the session's id, recorded in ``revoked_sessions`` when it signs out
(:mod:`livecommerce.auth.revocation`). For each ``/api/`` request this middleware verifies the
tokens it presents — the bearer token, or else the console and agent cookies (a host and an
agent can be signed in side by side in one browser) — and, when one of them has ``sv`` or
``sid``, reads the host's current version and which ids were signed out in **one statement**
(primary-key lookups; nothing cached, so it holds on every node at once and needs no Redis).
An ended one is flagged per token source (``session.REVOKED``): ``require_claims`` then answers
401 ``session_revoked`` when the route uses that token. Only flagged — routes that need no
credentials (sign in again, public lists) are unaffected. Tokens with neither (``livecommerce
host-token``, bearer integrations, the console's room-socket tokens) are not sessions and cost
no read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from livecommerce import keys
from livecommerce.auth import session
from livecommerce.auth.tokens import Claims, verify_token
from livecommerce.console import hosts
from livecommerce.errors import Unauthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIGNED_OUT = "it was signed out"
PASSWORD_CHANGED = "the password was changed"
_CHECK = f"""SELECT (SELECT {hosts.PASSWORD_VERSION} FROM hosts WHERE id = $1) AS pv,
                   ARRAY(SELECT sid FROM revoked_sessions WHERE sid = ANY($2::text[])) AS gone"""


def _tokens(request: web.Request) -> dict[str, str]:
    """The tokens the request presents, by source (what ``require_claims`` may use)."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        return {session.BEARER: token} if token else {}
    cookies = (session.COOKIE, session.AGENT_COOKIE)
    return {name: request.cookies[name] for name in cookies if request.cookies.get(name)}


def _claims(secret: str, token: str) -> Claims | None:
    try:
        return verify_token(secret, token)
    except Unauthorized:
        return None  # require_claims answers it, if the route needs credentials


@web.middleware
async def session_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Flag the request's ended sessions (module docstring)."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    secret = request.app[keys.SETTINGS].secret
    sessions: dict[str, Claims] = {}
    verified: dict[str, Claims] = {}
    for source, token in _tokens(request).items():
        claims = _claims(secret, token)
        if claims is None:
            continue
        verified[token] = claims
        if claims.session is not None or claims.session_id is not None:
            sessions[source] = claims
    request[session.VERIFIED] = verified
    if sessions:
        versioned = [c for c in sessions.values() if c.kind == "host" and c.session is not None]
        # One host's version is read: the first session's (the bearer's, or the console
        # cookie's). Another host's session in the agent cookie is no real browser's: ended.
        host = int(versioned[0].subject) if versioned else None
        ids = [c.session_id for c in sessions.values() if c.session_id is not None]
        row = await request.app[keys.PG_POOL].fetchrow(_CHECK, host, ids)
        gone = set(row["gone"])
        ended: dict[str, str] = {}
        for source, claims in sessions.items():
            if claims.session_id in gone:
                ended[source] = SIGNED_OUT
            elif (
                claims.kind == "host"
                and claims.session is not None
                and (int(claims.subject) != host or row["pv"] != claims.session)
            ):
                ended[source] = PASSWORD_CHANGED
        if ended:
            request[session.REVOKED] = ended
    return await handler(request)
