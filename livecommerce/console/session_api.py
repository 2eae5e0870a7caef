"""HTTP: console sign-in (password → session cookie + CSRF token), the session, sign-out.

The cookie (``lc_session``) is HttpOnly, SameSite=Lax, and Secure outside development; it holds
a host token, so the console calls the ordinary host API with it (see ``auth/http.py``). Each
sign-in is its own session (the token's ``sid``); signing out ends that one on the server
(``auth/revocation.py``), the host's other sessions stay signed in.
"""

from __future__ import annotations

import time
from typing import Annotated

from aiohttp import web
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Reply
from livecommerce.api.types import NO_NUL
from livecommerce.auth import revocation, session
from livecommerce.auth.tokens import Claims, issue_token
from livecommerce.console import hosts, signin_limit
from livecommerce.console.passwords import MAX_LENGTH
from livecommerce.errors import Forbidden, NotFound, Unauthorized

HostName = Annotated[str, Meta(min_length=1, max_length=100), NO_NUL]
Password = Annotated[str, Meta(min_length=1, max_length=MAX_LENGTH), NO_NUL]


class SignIn(Body):
    """A host's name and password."""

    name: HostName
    password: Password


class ConsoleHost(Model):
    id: int
    name: str


class ConsoleSession(Model):
    """The signed-in host and the token to send as ``X-CSRF-Token`` on every write."""

    host: ConsoleHost
    csrf_token: Annotated[str, Meta(description="Send as X-CSRF-Token on POST/PUT/PATCH/DELETE")]
    expires_in: Annotated[int, Meta(description="Seconds until the session ends")]


class SignedOut(Model):
    signed_out: bool


def same_origin(request: web.Request) -> None:
    """Refuse a sign-in posted from another site (login CSRF): an Origin, if sent, must be ours."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        raise Forbidden("sign-in from another origin", code="csrf_failed")


async def sign_in(call: Call[SignIn, None]) -> Reply[ConsoleSession]:
    """Sign in to the console with a host's name and password.

    Sets the session cookie and answers the CSRF token. 401 ``bad_credentials`` for a wrong
    name or password (the same answer for both); 429 ``too_many_sign_ins`` after 5 failures for
    a name or 20 from an address within 15 minutes.
    """
    same_origin(call.request)
    app, b = call.app, call.body
    redis = app[keys.REDIS]
    address = call.request.remote or "?"
    await signin_limit.check(redis, b.name, address)
    host = await hosts.check_sign_in(app[keys.PG_POOL], b.name, b.password)
    if host is None:
        await signin_limit.failed(redis, b.name, address)
        raise Unauthorized("wrong name or password", code="bad_credentials")
    await signin_limit.succeeded(redis, b.name)
    settings = app[keys.SETTINGS]
    ttl = settings.security.host_token_ttl_seconds
    token = issue_token(
        settings.secret, "host", host.id, ttl, session=host.password_version,
        session_id=revocation.new_session_id(),
    )  # fmt: skip
    cookie = session.session_cookie(token, ttl, secure=settings.production)
    body = ConsoleSession(
        host=ConsoleHost(id=host.id, name=host.name),
        csrf_token=session.csrf_token(settings.secret, token),
        expires_in=ttl,
    )
    return Reply(body, status=201, headers={"Set-Cookie": cookie})


async def current(call: Call[None, None]) -> ConsoleSession:
    """The signed-in host and the session's CSRF token (the console calls it on load)."""
    settings = call.app[keys.SETTINGS]
    name = await hosts.host_name(call.app[keys.PG_POOL], call.host_id)
    if name is None:
        raise NotFound("no such host", code="host_not_found")
    cookie = call.request.cookies.get(session.COOKIE, "")
    assert call.claims is not None
    return ConsoleSession(
        host=ConsoleHost(id=call.host_id, name=name),
        csrf_token=session.csrf_token(settings.secret, cookie) if cookie else "",
        expires_in=max(0, call.claims.expires_at - int(time.time())),
    )


async def end_session(call: Call[None, None]) -> None:
    """End the session that authenticated ``call`` on the server (a token without a session
    id — a plain host token — has nothing to end)."""
    claims: Claims | None = call.claims
    if claims is not None and claims.session_id is not None:
        await revocation.revoke(
            call.app[keys.PG_POOL], claims.session_id, claims.kind, claims.subject,
            claims.expires_at,
        )  # fmt: skip


async def sign_out(call: Call[None, None]) -> Reply[SignedOut]:
    """Sign out: this session ends on the server and its cookie is cleared.

    Needs the CSRF token like every write. From then on the session's cookie (or its token sent
    as a bearer) answers 401 ``session_revoked`` on every node, even if a copy of it was kept;
    the host's other sessions (other browsers or devices) stay signed in."""
    await end_session(call)
    secure = call.app[keys.SETTINGS].production
    cookie = session.session_cookie("", 0, secure=secure)
    return Reply(SignedOut(signed_out=True), headers={"Set-Cookie": cookie})
