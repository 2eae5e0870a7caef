"""HTTP: WeChat login (code -> user token) and the caller's profile."""

from __future__ import annotations

import time

from aiohttp import web

from livecommerce import inputs, keys
from livecommerce.auth.http import require_claims
from livecommerce.auth.tokens import issue_token
from livecommerce.commerce import users
from livecommerce.httpio import json_response


async def login(request: web.Request) -> web.Response:
    """POST /api/auth/wechat/login {code}: the user token for a ``wx.login`` code."""
    body = await inputs.json_object(request, ("code",))
    code = inputs.required_text(body, "code", max_len=128)
    wx = await request.app[keys.WECHAT_CLIENT].code2session(code)
    user_id = await users.upsert_wechat_user(request.app[keys.PG_POOL], wx)
    settings = request.app[keys.SETTINGS]
    now = time.time()
    ttl = settings.security.token_ttl_seconds
    token = issue_token(settings.secret, "user", user_id, ttl, now=now)
    profile = await users.get_profile(request.app[keys.PG_POOL], user_id)
    return json_response(
        {
            "token": token,
            "token_type": "Bearer",
            "expires_at": int(now) + ttl,
            "expires_in": ttl,
            "user": profile,
        }
    )


async def me(request: web.Request) -> web.Response:
    """GET /api/me: the logged-in user's profile."""
    claims = require_claims(request, "user")
    assert claims.user_id is not None
    return json_response(await users.get_profile(request.app[keys.PG_POOL], claims.user_id))
