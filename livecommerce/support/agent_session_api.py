"""HTTP: an agent's sign-in (login + password -> agent session cookie + CSRF token), the
session, sign-out. The same machinery as the host console (:mod:`console.session_api`): the
password KDF, the failed-sign-in limits (counted under ``agent:<login>``, apart from host
names), the Origin check, an HttpOnly SameSite=Lax cookie — but its own cookie
(``lc_agent_session``), holding an ``agent`` token, so a host and an agent can be signed in
side by side. Signing out ends that one session on the server (``auth/revocation.py``) and
closes its open feed sockets. The token also carries the agent's password version (``sv``): a
new password set by the host ends every session signed in before (``console/session_guard.py``)."""

from __future__ import annotations

import time
from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Reply
from livecommerce.api.types import NO_NUL
from livecommerce.auth import revocation, session
from livecommerce.auth.tokens import issue_token
from livecommerce.console import signin_limit
from livecommerce.console.session_api import Password, SignedOut, end_session, same_origin
from livecommerce.errors import Unauthorized
from livecommerce.support import agent_accounts, agents


class AgentSignIn(Body):
    """An agent's login and password (set by their host)."""

    login: Annotated[str, Meta(min_length=1, max_length=64), NO_NUL]
    password: Password


class AgentMe(Model):
    id: int
    name: str
    host_id: Annotated[int, Meta(description="The agent's shop")]
    capacity: int


class AgentSession(Model):
    """The signed-in agent and the token to send as ``X-CSRF-Token`` on every write."""

    agent: AgentMe
    csrf_token: Annotated[str, Meta(description="Send as X-CSRF-Token on POST/PUT/PATCH/DELETE")]
    expires_in: Annotated[int, Meta(description="Seconds until the session ends")]


async def sign_in(call: Call[AgentSignIn, None]) -> Reply[AgentSession]:
    """Sign an agent in: sets the agent session cookie and answers the CSRF token.

    401 ``bad_credentials`` for a wrong login or password (the same answer for both); 429
    ``too_many_sign_ins`` after 5 failures for a login or 20 from an address in 15 minutes;
    403 ``csrf_failed`` when posted from another origin."""
    same_origin(call.request)
    app, b = call.app, call.body
    redis, address, limit_name = app[keys.REDIS], call.request.remote or "?", "agent:" + b.login
    await signin_limit.check(redis, limit_name, address)
    agent = await agent_accounts.check_sign_in(app[keys.PG_POOL], b.login, b.password)
    if agent is None:
        await signin_limit.failed(redis, limit_name, address)
        raise Unauthorized("wrong login or password", code="bad_credentials")
    await signin_limit.succeeded(redis, limit_name)
    settings = app[keys.SETTINGS]
    ttl = settings.security.host_token_ttl_seconds
    token = issue_token(
        settings.secret, "agent", agent["id"], ttl, session=agent["password_version"],
        session_id=revocation.new_session_id(),
    )  # fmt: skip
    cookie = session.session_cookie(
        token, ttl, secure=settings.production, name=session.AGENT_COOKIE
    )
    body = AgentSession(
        agent=AgentMe(**{k: agent[k] for k in ("id", "name", "host_id", "capacity")}),
        csrf_token=session.csrf_token(settings.secret, token),
        expires_in=ttl,
    )
    return Reply(body, status=201, headers={"Set-Cookie": cookie})


async def current(call: Call[None, None]) -> AgentSession:
    """The signed-in agent and the session's CSRF token (the agent page calls it on load);
    404 ``agent_not_found`` when the account is gone."""
    settings = call.app[keys.SETTINGS]
    agent = await agents.get(call.app[keys.PG_POOL], call.agent_id)
    cookie = call.request.cookies.get(session.AGENT_COOKIE, "")
    assert call.claims is not None
    return AgentSession(
        agent=AgentMe(**{k: agent[k] for k in ("id", "name", "host_id", "capacity")}),
        csrf_token=session.csrf_token(settings.secret, cookie) if cookie else "",
        expires_in=max(0, call.claims.expires_at - int(time.time())),
    )


async def sign_out(call: Call[None, None]) -> Reply[SignedOut]:
    """Sign out: this session ends on the server and the agent cookie is cleared.

    Needs the CSRF token like every write. From then on the session's cookie (or its token as a
    bearer) answers 401 ``session_revoked`` on every node and its open feed sockets close
    (1008 ``session_revoked``); the agent's other sessions stay signed in. The presence lease is
    left to run out, as for a closed page (``POST /api/agent/presence`` ``{"online": false}``
    first to leave the queue at once)."""
    await end_session(call)
    assert call.claims is not None
    if call.claims.session_id is not None:
        await call.app[keys.SUPPORT].feed.publish_signed_out(call.claims.session_id)
    secure = call.app[keys.SETTINGS].production
    cookie = session.session_cookie("", 0, secure=secure, name=session.AGENT_COOKIE)
    return Reply(SignedOut(signed_out=True), headers={"Set-Cookie": cookie})
