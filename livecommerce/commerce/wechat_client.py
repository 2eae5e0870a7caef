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
import time
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
    _access_token: str = field(default="", repr=False)
    _token_expires: float = 0.0

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

    async def send_subscribe(
        self, openid: str, template_id: str, page: str, data: dict[str, str]
    ) -> None:
        """Send one subscribe message (``/cgi-bin/message/subscribe/send``).

        Raises:
            MessageRefused: final (the user did not subscribe to the template, bad openid).
            MessageFailed: transient (network, busy, token) — retry later.
        """
        base = self.base_url.rstrip("/")
        for _attempt in range(2):
            if not self._access_token or time.monotonic() >= self._token_expires:
                creds = {"appid": self.app_id, "secret": self.app_secret}
                got = await _json_call(
                    self.session, "GET", base + "/cgi-bin/token",
                    params={"grant_type": "client_credential", **creds},
                )  # fmt: skip
                token, ttl = got.get("access_token"), got.get("expires_in", 7200)
                if not isinstance(token, str) or not isinstance(ttl, int):
                    raise MessageFailed(f"no access_token (errcode {got.get('errcode')})")
                self._access_token, self._token_expires = token, time.monotonic() + ttl - 300
            body = {
                "touser": openid, "template_id": template_id, "page": page,
                "data": {k: {"value": v} for k, v in data.items()},
            }  # fmt: skip
            answer = await _json_call(
                self.session, "POST", base + "/cgi-bin/message/subscribe/send",
                params={"access_token": self._access_token}, data=orjson.dumps(body),
            )  # fmt: skip
            errcode = answer.get("errcode", 0)
            if errcode == 0:
                return
            if errcode in (40001, 42001):  # token invalid or expired: fetch a new one, once
                self._access_token = ""
                continue
            if isinstance(errcode, int) and errcode in _FINAL_MESSAGE_ERRORS:
                raise MessageRefused(f"errcode {errcode} ({_FINAL_MESSAGE_ERRORS[errcode]})")
            raise MessageFailed(f"errcode {errcode}")
        raise MessageFailed("access_token rejected twice")

    async def msg_sec_check(self, openid: str, content: str, scene: int = 1) -> str:
        """WeChat's text content-security check (``/wxa/msg_sec_check``, version 2).

        ``scene`` 1 = a profile field (nickname). Returns ``suggest``: ``pass``, ``review`` or
        ``risky``.

        Raises:
            MessageFailed: transient (network, busy, token) — the text was not checked.
        """
        base = self.base_url.rstrip("/")
        body = orjson.dumps({"content": content, "version": 2, "scene": scene, "openid": openid})
        for _attempt in range(2):
            token = await self._token()
            answer = await _json_call(
                self.session, "POST", base + "/wxa/msg_sec_check",
                params={"access_token": token}, data=body,
            )  # fmt: skip
            errcode = answer.get("errcode", 0)
            if errcode in (40001, 42001):
                self._access_token = ""
                continue
            result = answer.get("result")
            suggest = result.get("suggest") if isinstance(result, dict) else None
            if errcode == 0 and suggest in ("pass", "review", "risky"):
                return str(suggest)
            raise MessageFailed(f"msg_sec_check errcode {errcode}")
        raise MessageFailed("access_token rejected twice")

    async def _token(self) -> str:
        """The cached ``access_token`` (fetched when missing or about to expire)."""
        if not self._access_token or time.monotonic() >= self._token_expires:
            creds = {"appid": self.app_id, "secret": self.app_secret}
            got = await _json_call(
                self.session, "GET", self.base_url.rstrip("/") + "/cgi-bin/token",
                params={"grant_type": "client_credential", **creds},
            )  # fmt: skip
            token, ttl = got.get("access_token"), got.get("expires_in", 7200)
            if not isinstance(token, str) or not isinstance(ttl, int):
                raise MessageFailed(f"no access_token (errcode {got.get('errcode')})")
            self._access_token, self._token_expires = token, time.monotonic() + ttl - 300
        return self._access_token

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


class MessageRefused(Exception):
    """WeChat will never deliver this message (the user did not subscribe, bad openid, ...)."""


class MessageFailed(Exception):
    """A transient failure sending a message: try again later."""


_FINAL_MESSAGE_ERRORS = {43101: "user refused", 40003: "invalid openid", 47003: "invalid arguments"}


async def _json_call(
    session: aiohttp.ClientSession, method: str, url: str, **kw: object
) -> dict[str, object]:
    try:
        async with session.request(method, url, **kw) as resp:  # type: ignore[arg-type]
            raw = await resp.read()
            if resp.status != 200:
                raise MessageFailed(f"HTTP {resp.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise MessageFailed(type(exc).__name__) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MessageFailed("non-JSON answer") from None
    if not isinstance(data, dict):
        raise MessageFailed("non-object answer")
    return data


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
