"""The WeChat mini-program API client: ``jscode2session`` (login) over real HTTP.

Error codes of ``jscode2session`` and what the caller sees:

========  ==================================  ==========================================
errcode   meaning                             answer
========  ==================================  ==========================================
-1        system busy                         retried with exponential backoff, then 502
40029     invalid code                        400 ``invalid_code``
40163     code already used                   400 ``code_used``
45011     per-minute quota reached            429 ``rate_limited``
40226     blocked high-risk user              403 ``user_blocked``
other     (bad appid/secret, ...)             502 ``upstream_error`` (our configuration)
========  ==================================  ==========================================

A transport failure or a non-JSON answer is retried like -1. The ``session_key`` is returned to
the caller (which stores it server-side) but never logged: :class:`WxSession` hides it from
``repr``, and log lines name only the errcode.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp
import orjson

from livecommerce.errors import (
    AppError,
    Forbidden,
    RateLimited,
    UpstreamError,
    ValidationError,
)

log = logging.getLogger("livecommerce.wechat")


@dataclass(frozen=True, slots=True)
class WxSession:
    openid: str
    unionid: str | None
    session_key: str = field(repr=False)


class _Retry(Exception):
    """A transient failure worth another attempt."""


@dataclass(slots=True)
class WechatClient:
    session: aiohttp.ClientSession
    base_url: str
    app_id: str
    app_secret: str = field(repr=False)
    max_attempts: int = 3
    backoff_seconds: float = 0.2

    async def code2session(self, code: str) -> WxSession:
        """Exchange a ``wx.login`` code for the user's openid (and unionid, session_key).

        Raises:
            ValidationError, RateLimited, Forbidden, UpstreamError: see the module table.
        """
        params = {
            "appid": self.app_id,
            "secret": self.app_secret,
            "js_code": code,
            "grant_type": "authorization_code",
        }
        delay = self.backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self._once(params)
            except _Retry as exc:
                log.warning(
                    "jscode2session attempt %d/%d failed: %s", attempt, self.max_attempts, exc
                )
                if attempt == self.max_attempts:
                    break
                await asyncio.sleep(delay)
                delay *= 2
        raise UpstreamError("WeChat login is unavailable, try again", code="wechat_unavailable")

    async def _once(self, params: dict[str, str]) -> WxSession:
        url = self.base_url.rstrip("/") + "/sns/jscode2session"
        try:
            async with self.session.get(url, params=params) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry(type(exc).__name__) from None
        if status != 200:
            raise _Retry(f"HTTP {status}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Retry("non-JSON answer") from None
        if not isinstance(data, dict):
            raise _Retry("non-object answer")
        errcode = data.get("errcode", 0)
        if errcode == -1:
            raise _Retry("errcode -1 (system busy)")
        if errcode:
            raise _error_for(errcode)
        openid, unionid, key = data.get("openid"), data.get("unionid"), data.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(key, str):
            raise UpstreamError("WeChat answered without an openid", code="upstream_error")
        return WxSession(
            openid=openid, unionid=unionid if isinstance(unionid, str) else None, session_key=key
        )


def _error_for(errcode: object) -> AppError:
    if errcode == 40029:
        return ValidationError("code", "invalid login code", code="invalid_code")
    if errcode == 40163:
        return ValidationError("code", "login code already used", code="code_used")
    if errcode == 45011:
        return RateLimited("too many logins, try again in a minute")
    if errcode == 40226:
        return Forbidden("this WeChat user is blocked", code="user_blocked")
    log.error("jscode2session failed with errcode %r", errcode)
    return UpstreamError(f"WeChat login failed (errcode {errcode})")
