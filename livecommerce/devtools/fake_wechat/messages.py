"""The fake WeChat's messages: access tokens, subscribe messages, the content-security check.

**Messages** — ``GET /cgi-bin/token`` (client_credential), ``POST
/cgi-bin/message/subscribe/send`` with
``?access_token=``; users named ``refuse*`` have refused subscribe messages (43101). Sent messages
are listed at ``GET /dev/messages``. ``POST /wxa/msg_sec_check`` (content security v2) answers
``risky`` for text containing "risky" or "违规", ``review`` for "review", else ``pass``;
``POST /dev/sec-check`` ``{"down": true}`` makes it fail like an outage (errcode -1) until
``{"down": false}``, and ``"delay_ms"`` delays each answer (a slow WeChat).
"""

from __future__ import annotations

import asyncio
import re
import secrets

import orjson
from aiohttp import web

from livecommerce.devtools.fake_wechat import answers
from livecommerce.devtools.fake_wechat.login import openid_for
from livecommerce.devtools.fake_wechat.state import WechatState

# What the fake's content-security check flags (msg_sec_check v2).
RISKY_WORDS = ("risky", "违规")
REVIEW_WORDS = ("review",)


class MessagesApi(WechatState):
    """``/cgi-bin/token``, subscribe send, ``msg_sec_check``, ``/dev/messages``,
    ``/dev/sec-check``."""

    async def token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != self.app_id:
            return answers.err(40013, "invalid appid")
        if q.get("secret") != self.app_secret:
            return answers.err(40125, "invalid appsecret")
        token = secrets.token_urlsafe(24)
        self.access_tokens.add(token)
        return answers.text_json({"access_token": token, "expires_in": 7200})

    async def _message(
        self, request: web.Request, kind: str, required: tuple[str, ...]
    ) -> web.Response:
        if request.query.get("access_token") not in self.access_tokens:
            return answers.err(40001, "invalid credential, access_token is invalid or not latest")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return answers.err(47001, "data format error")
        if not isinstance(body, dict) or any(not body.get(k) for k in required):
            return answers.err(47003, "argument invalid!")
        touser = str(body["touser"])
        if not re.fullmatch(r"o[0-9a-f]{27}", touser):
            return answers.err(40003, "invalid openid")
        if kind == "subscribe" and any(
            touser == openid_for(self.app_id, f"refuse{i}") for i in ("", "1", "2")
        ):
            return answers.err(43101, "user refuse to accept the msg")
        self.messages.append({"kind": kind, **body})
        return answers.text_json({"errcode": 0, "errmsg": "ok", "msgid": len(self.messages)})

    async def subscribe_send(self, request: web.Request) -> web.Response:
        return await self._message(request, "subscribe", ("touser", "template_id", "data"))

    async def msg_sec_check(self, request: web.Request) -> web.Response:
        """Content security v2: text containing a word of ``RISKY_WORDS`` is ``risky``,
        ``REVIEW_WORDS`` ``review``, anything else ``pass``."""
        if request.query.get("access_token") not in self.access_tokens:
            return answers.err(40001, "invalid credential, access_token is invalid or not latest")
        if self.sec_check_delay:
            await asyncio.sleep(self.sec_check_delay)
        if self.sec_check_down:
            return answers.err(-1, "system error")
        try:
            body = orjson.loads(await request.read())
            content, version = str(body["content"]), body.get("version")
            openid = str(body["openid"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return answers.err(47001, "data format error")
        if version != 2 or not re.fullmatch(r"o[0-9a-f]{27}", openid):
            return answers.err(40003 if version == 2 else 47003, "invalid openid or version")
        lowered = content.lower()
        suggest, label = "pass", 100
        if any(w in lowered for w in RISKY_WORDS):
            suggest, label = "risky", 20001
        elif any(w in lowered for w in REVIEW_WORDS):
            suggest, label = "review", 21000
        self.checked_texts.append(content)
        self.checked_scenes.append(body.get("scene"))
        return answers.text_json({
            "errcode": 0, "errmsg": "ok", "trace_id": secrets.token_hex(8),
            "result": {"suggest": suggest, "label": label},
            "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest,
                        "label": label}],
        })  # fmt: skip

    async def dev_sec_check(self, request: web.Request) -> web.Response:
        """Development switches of the content check: ``{"down": bool, "delay_ms": int}``."""
        try:
            body = orjson.loads(await request.read())
            if "down" in body:
                self.sec_check_down = bool(body["down"])
            if "delay_ms" in body:
                self.sec_check_delay = max(0, min(int(body["delay_ms"]), 60_000)) / 1000
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            return web.json_response({"error": "expected {down: bool, delay_ms: int}"}, status=400)
        return answers.json(
            {"down": self.sec_check_down, "delay_ms": int(self.sec_check_delay * 1000)}
        )

    async def dev_messages(self, request: web.Request) -> web.Response:
        return answers.json({"messages": self.messages})
