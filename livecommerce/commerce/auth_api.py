"""HTTP: WeChat login (code -> user token) and the caller's profile."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, to
from livecommerce.api.types import NO_NUL, Url
from livecommerce.auth.tokens import issue_token
from livecommerce.commerce import users
from livecommerce.commerce.wechat_client import MessageFailed
from livecommerce.errors import UpstreamError, ValidationError


class LoginBody(Body):
    """The code ``wx.login`` gave the mini-program (valid once, for five minutes)."""

    code: Annotated[str, Meta(min_length=1, max_length=128), NO_NUL]


class User(Model):
    """A user's public profile (never openid, unionid or session_key)."""

    id: int
    nickname: str
    avatar_url: str
    created_at: datetime


class LoginResult(Model):
    token: Annotated[str, Meta(description="Bearer token (also for the WebSocket)")]
    token_type: Literal["Bearer"]
    expires_at: Annotated[int, Meta(description="Unix seconds")]
    expires_in: Annotated[int, Meta(description="Seconds")]
    user: User


async def login(call: Call[LoginBody, None]) -> LoginResult:
    """Exchange a ``wx.login`` code for a user token (WeChat code2Session).

    The user is created on first login. 502 when WeChat fails (after retries).
    """
    app = call.app
    wx = await app[keys.WECHAT_CLIENT].code2session(call.body.code)
    user_id = await users.upsert_wechat_user(app[keys.PG_POOL], wx)
    settings = app[keys.SETTINGS]
    now = time.time()
    ttl = settings.security.token_ttl_seconds
    token = issue_token(settings.secret, "user", user_id, ttl, now=now, openid=wx.openid)
    profile = await users.get_profile(app[keys.PG_POOL], user_id)
    return LoginResult(
        token=token,
        token_type="Bearer",
        expires_at=int(now) + ttl,
        expires_in=ttl,
        user=to(User, profile),
    )


async def me(call: Call[None, None]) -> User:
    """The logged-in user's profile."""
    return to(User, await users.get_profile(call.app[keys.PG_POOL], call.user_id))


class ProfileUpdate(Body):
    """What the user changes of their profile (absent = unchanged)."""

    nickname: Annotated[str, Meta(min_length=1, max_length=32), NO_NUL] | None = None
    avatar_url: Url | None = None


async def update_me(call: Call[ProfileUpdate, None]) -> User:
    """Change the caller's nickname and/or avatar URL (the group member list shows them).

    A nickname first passes WeChat's content-security check (`msgSecCheck` v2, scene
    "profile"): anything but `pass` is a 400 `content_risky` on `nickname` and nothing is
    stored; 502 when WeChat cannot check it.
    """
    app, body = call.app, call.body
    pool = app[keys.PG_POOL]
    if body.nickname is not None:
        openid = await users.openid_of(pool, call.user_id)
        try:
            suggest = await app[keys.WECHAT_CLIENT].msg_sec_check(openid, body.nickname)
        except MessageFailed:
            raise UpstreamError(
                "WeChat cannot check the nickname now, try again", code="wechat_unavailable"
            ) from None
        if suggest != "pass":
            raise ValidationError("nickname", "was refused by WeChat's content check",
                                  code="content_risky")  # fmt: skip
    profile = await users.update_profile(
        pool, call.user_id, nickname=body.nickname, avatar_url=body.avatar_url
    )
    return to(User, profile)
