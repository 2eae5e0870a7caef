"""Ended sessions stop working on every node at once: signed out, or issued for an older
password (a host's console session, an agent's session).

A console session's host token carries ``sv``, the host's password version when it signed in
(``hosts.password_changed_at`` in microseconds); an agent session's token carries ``sv`` too,
the agent's password version (``support_agents.password_version``, one more at every new
password the host sets, migration 0027); a console or agent session's token carries ``sid``,
the session's id, recorded in ``revoked_sessions`` when it signs out
(:mod:`livecommerce.auth.revocation`). For each ``/api/`` request this middleware verifies the
tokens it presents — the bearer token, or else the console and agent cookies (a host and an
agent can be signed in side by side in one browser) — and, when one of them is a session, reads
the host's current version, the agent's and which ids were signed out in **one statement**
(primary-key lookups; nothing cached, so it holds on every node at once and needs no Redis).
An ended one is flagged per token source (``session.REVOKED``): ``require_claims`` then answers
401 ``session_revoked`` when the route uses that token. Only flagged — routes that need no
credentials (sign in again, public lists) are unaffected.

Every agent token is a session (only the agent sign-in issues them): one without ``sv`` was
signed in before agent sessions carried a version, and counts as ended (no read needed) — its
password may have been changed since, which nothing recorded. An agent whose account is gone is
not flagged here: the agent routes answer 404 ``agent_not_found`` for it, as before. Host tokens
with neither claim (``livecommerce host-token``, bearer integrations, the console's room-socket
tokens) are not sessions and cost no read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aiohttp import web

from livecommerce import keys
from livecommerce.auth import session
from livecommerce.auth.tokens import Claims, Kind, verify_token
from livecommerce.console import hosts
from livecommerce.errors import Unauthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIGNED_OUT = "it was signed out"
PASSWORD_CHANGED = "the password was changed"
UNVERSIONED = "it was signed in before sessions carried a password version; sign in again"
_CHECK = f"""SELECT (SELECT {hosts.PASSWORD_VERSION} FROM hosts WHERE id = $1) AS pv,
                   (SELECT password_version FROM support_agents WHERE id = $3) AS av,
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


def _is_session(claims: Claims) -> bool:
    return claims.kind == "agent" or claims.session is not None or claims.session_id is not None


def _id(subject: str) -> int | None:
    return int(subject) if subject.isascii() and subject.isdigit() else None


def _versioned(sessions: Mapping[str, Claims], kind: Kind, home: str) -> int | None:
    """The account whose version is read for ``kind``: the first versioned session of that
    kind, the one in its own cookie (``home``) first. Another account's session of the same
    kind beside it is no real browser's: it counts as ended."""
    ordered = sorted(sessions.items(), key=lambda item: item[0] != home)
    for _, claims in ordered:
        if claims.kind == kind and claims.session is not None:
            return _id(claims.subject)
    return None


def _ended(
    claims: Claims, row: asyncpg.Record | None, host: int | None, agent: int | None
) -> str | None:
    """Why the session ``claims`` ended, else None (``row``: the ``_CHECK`` answer)."""
    if row is not None and claims.session_id is not None and claims.session_id in row["gone"]:
        return SIGNED_OUT
    if claims.kind == "agent":
        if claims.session is None:
            return UNVERSIONED
        if agent is None or _id(claims.subject) != agent or row is None:
            return PASSWORD_CHANGED
        if row["av"] is not None and row["av"] != claims.session:  # None: account gone (404)
            return PASSWORD_CHANGED
    elif claims.kind == "host" and claims.session is not None:
        if host is None or _id(claims.subject) != host or row is None:
            return PASSWORD_CHANGED
        if row["pv"] != claims.session:
            return PASSWORD_CHANGED
    return None


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
        if _is_session(claims):
            sessions[source] = claims
    request[session.VERIFIED] = verified
    if sessions:
        host = _versioned(sessions, "host", session.COOKIE)
        agent = _versioned(sessions, "agent", session.AGENT_COOKIE)
        ids = [c.session_id for c in sessions.values() if c.session_id is not None]
        row = None
        if host is not None or agent is not None or ids:  # else: nothing to read (no sv, sid)
            row = await request.app[keys.PG_POOL].fetchrow(_CHECK, host, ids, agent)
        ended: dict[str, str] = {}
        for source, claims in sessions.items():
            why = _ended(claims, row, host, agent)
            if why is not None:
                ended[source] = why
        if ended:
            request[session.REVOKED] = ended
    return await handler(request)
