"""The fake WeChat's login: ``jscode2session`` and the openids and unionids it gives.

**Login** — ``GET /sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code``.
A ``js_code`` is ``[control~]user[.anything]``: the part before the first ``.`` names the user
(same user = same openid; users named ``union*`` also get a unionid). Each code works once (a
reused one gets 40163). The optional control prefix picks an error:

* ``e40029~...`` invalid code, ``e45011~...`` rate limited, ``e40226~...`` high-risk user,
  ``e<other>~...`` that errcode;
* ``busy<N>~...`` answers -1 (system busy) to the first N calls for that code, then succeeds;
* ``html~...`` answers HTTP 500 with an HTML page (a broken upstream).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from aiohttp import web

from livecommerce.devtools.fake_wechat import answers
from livecommerce.devtools.fake_wechat.state import WechatState

_CODE = re.compile(r"^(?:(?P<ctl>[a-z0-9]+)~)?(?P<user>[A-Za-z0-9_-]{1,64})(?:\.[A-Za-z0-9._-]*)?$")


def openid_for(app_id: str, user: str) -> str:
    """The openid the fake gives ``user`` of ``app_id`` (stable, so tests can predict it)."""
    return "o" + hashlib.sha256(f"{app_id}|{user}".encode()).hexdigest()[:27]


def unionid_for(user: str) -> str:
    return "u" + hashlib.sha256(f"union|{user}".encode()).hexdigest()[:27]


class LoginApi(WechatState):
    """``GET /sns/jscode2session``."""

    async def jscode2session(self, request: web.Request) -> web.Response:
        self.login_calls += 1
        q = request.query
        if q.get("appid") != self.app_id:
            return answers.err(40013, "invalid appid")
        if q.get("secret") != self.app_secret:
            return answers.err(40125, "invalid appsecret")
        if q.get("grant_type") != "authorization_code":
            return answers.err(40002, "invalid grant_type")
        code = q.get("js_code", "")
        m = _CODE.match(code)
        if m is None or code in self.used_codes:
            return answers.err(40163 if code in self.used_codes else 40029)
        ctl, user = m.group("ctl"), m.group("user")
        if ctl == "html":
            return web.Response(
                status=500, text="<html>502 Bad Gateway</html>", content_type="text/html"
            )
        if ctl and ctl.startswith("busy") and ctl[4:].isdigit():
            seen = self.busy_calls.get(code, 0)
            self.busy_calls[code] = seen + 1
            if seen < int(ctl[4:]):
                return answers.err(-1)
        elif ctl and ctl.startswith("e") and ctl[1:].isdigit():
            return answers.err(int(ctl[1:]))
        elif ctl:
            return answers.err(40029)
        self.used_codes.add(code)
        body: dict[str, Any] = {
            "openid": openid_for(self.app_id, user),
            "session_key": secrets.token_urlsafe(18),
        }
        if user.startswith("union"):
            body["unionid"] = unionid_for(user)
        return answers.text_json(body)
