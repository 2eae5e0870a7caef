"""The fake WeChat's customer-service side: the send and typing APIs with WeChat's reply window,
and a dev endpoint that pushes buyer messages to our push URL signed/encrypted like WeChat.

Routes (added to the fake WeChat app by :func:`add_routes`):

* ``POST /cgi-bin/message/custom/send?access_token=`` — ``{touser, msgtype, ...}``. Enforces the
  mini-program window per buyer: after a pushed user message 5 replies within 48 h, after an
  enter-session event 2 within 1 min; closed -> 45015, used up -> 45047. Also 40001 (token),
  47001/47003 (body), 40003 (openid).
* ``POST /cgi-bin/message/custom/typing?access_token=`` — ``{touser, command}``: 45072 bad
  command, 45080 no message exchanged in the last 30 s, 45081 already typing (15 s).
* ``POST /dev/support/push`` — inject a buyer message: ``{url, user | openid, type: text |
  image | miniprogrampage | event, content, page_path, title, session_from, format: xml | json,
  mode: plain | compat | safe, key: 0 | 1 (current / previous EncodingAESKey), signature: good |
  bad | missing, msg_id, create_time, tries: 1-3}``. Sends it ``tries`` times (WeChat's retries
  of one message) and answers ``{openid, msg_id, create_time, answers: [{status, body}], body,
  query}``.
* ``POST /dev/support/fail`` — ``{openid, errcode, times}``: the next ``times`` sends to that
  buyer answer ``errcode`` (e.g. 45047 on a first reply, as WeChat has been seen to do).
* ``GET /dev/support/messages[?touser=]`` — what the send API accepted, oldest first.
* ``GET /dev/support/typing[?touser=]`` — every typing call, oldest first: ``{touser, command,
  errcode, at, sent_before}`` (``sent_before``: messages accepted for ``touser`` before it).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from livecommerce.support.crypto import MessageCrypt, signature
from livecommerce.support.push import to_xml

WINDOWS = {"message": (5, 48 * 3600.0), "enter": (2, 60.0)}
TYPING_SECONDS, EXCHANGE_SECONDS = 15.0, 30.0


@dataclass
class Window:
    limit: int
    until: float
    sent: int = 0


@dataclass
class FakeCustomerService:
    """WeChat's view of the customer-service conversations of one app."""

    app_id: str
    token: str = ""
    crypt: MessageCrypt | None = None
    windows: dict[str, Window] = field(default_factory=dict)
    last_exchange: dict[str, float] = field(default_factory=dict)
    typing_until: dict[str, float] = field(default_factory=dict)
    forced: dict[str, list[int]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    # Every typing call: {touser, command, errcode, at, sent_before (messages sent to touser)}.
    typing_calls: list[dict[str, Any]] = field(default_factory=list)
    clock: Callable[[], float] = time.time

    def open(self, openid: str, kind: str) -> None:
        """A buyer action as WeChat records it (a message resets; enter opens when closed)."""
        now = self.clock()
        limit, seconds = WINDOWS[kind]
        current = self.windows.get(openid)
        if (
            kind == "message"
            or current is None
            or current.until <= now
            or (current.sent >= current.limit)
        ):
            self.windows[openid] = Window(limit, now + seconds)
        self.last_exchange[openid] = now

    def check_send(self, openid: str) -> int:
        """The errcode WeChat gives a reply to ``openid`` now (0 = accepted and counted)."""
        if self.forced.get(openid):
            return self.forced[openid].pop(0)
        window, now = self.windows.get(openid), self.clock()
        if window is None or window.until <= now:
            return 45015
        if window.sent >= window.limit:
            return 45047
        window.sent += 1
        self.last_exchange[openid] = now
        self.typing_until.pop(openid, None)  # an outgoing message cancels "typing"
        return 0

    def check_typing(self, openid: str, command: object) -> int:
        now = self.clock()
        if command not in ("Typing", "CancelTyping"):
            return 45072
        if now - self.last_exchange.get(openid, float("-inf")) > EXCHANGE_SECONDS:
            return 45080
        if command == "CancelTyping":
            self.typing_until.pop(openid, None)
            return 0
        if self.typing_until.get(openid, 0.0) > now:
            return 45081
        self.typing_until[openid] = now + TYPING_SECONDS
        return 0

    def message(self, openid: str, spec: dict[str, Any]) -> dict[str, str | int]:
        """The fields of one pushed message (WeChat's names) from an inject request."""
        kind = str(spec.get("type", "text"))
        create_time = int(spec.get("create_time") or self.clock())
        values: dict[str, str | int] = {
            "ToUserName": "gh_fake" + self.app_id[-8:], "FromUserName": openid,
            "CreateTime": create_time, "MsgType": kind,
        }  # fmt: skip
        if kind == "event":
            values["Event"] = str(spec.get("event", "user_enter_tempsession"))
            values["SessionFrom"] = str(spec.get("session_from", ""))
            return values
        if kind == "text":
            values["Content"] = str(spec.get("content", ""))
        elif kind == "image":
            values["PicUrl"] = str(spec.get("pic_url", "https://example.com/p.jpg"))
            values["MediaId"] = str(spec.get("media_id", "media" + secrets.token_hex(4)))
        elif kind == "miniprogrampage":
            values["Title"] = str(spec.get("title", ""))
            values["AppId"] = self.app_id
            values["PagePath"] = str(spec.get("page_path", ""))
            values["ThumbUrl"] = str(spec.get("thumb_url", ""))
            values["ThumbMediaId"] = "thumb" + secrets.token_hex(4)
        values["MsgId"] = int(spec.get("msg_id") or secrets.randbits(62))
        return values

    def envelope(
        self, values: dict[str, str | int], fmt: str, mode: str, key: int, sig: str
    ) -> tuple[bytes, dict[str, str]]:
        """(body, query) of the push as WeChat sends it in ``mode`` with ``fmt``."""
        timestamp, nonce = str(int(self.clock())), str(secrets.randbelow(10**10))
        query = {"timestamp": timestamp, "nonce": nonce, "openid": str(values["FromUserName"])}
        query["signature"] = signature(self.token, timestamp, nonce)

        def encode(v: dict[str, str | int]) -> bytes:
            return to_xml(v) if fmt == "xml" else orjson.dumps(v)

        if mode == "plain":
            body = encode(values)
        else:
            if self.crypt is None:
                raise ValueError("the app has no EncodingAESKey")
            encrypted = self.crypt.encrypt(encode(values), key)
            outer: dict[str, str | int] = {"ToUserName": values["ToUserName"]}
            if mode == "compat":
                outer = dict(values)
            outer["Encrypt"] = encrypted
            body = encode(outer)
            query["encrypt_type"] = "aes"
            query["msg_signature"] = signature(self.token, timestamp, nonce, encrypted)
        if sig == "bad":
            query["signature"] = "0" * 40
            if "msg_signature" in query:
                query["msg_signature"] = "0" * 40
        elif sig == "missing":
            query.pop("signature")
            query.pop("msg_signature", None)
        return body, query


def add_routes(
    app: web.Application,
    cs: FakeCustomerService,
    tokens: set[str],
    openid_for: Callable[[str], str],
    session: Callable[[], aiohttp.ClientSession | None],
) -> None:
    """Add the customer-service routes of the fake WeChat (``tokens``: its access tokens)."""

    def err(code: int, message: str) -> web.Response:
        return web.Response(
            body=orjson.dumps({"errcode": code, "errmsg": message}), content_type="text/plain"
        )

    async def read(
        request: web.Request, required: tuple[str, ...]
    ) -> dict[str, Any] | web.Response:
        if request.query.get("access_token") not in tokens:
            return err(40001, "invalid credential, access_token is invalid or not latest")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return err(47001, "data format error")
        if not isinstance(body, dict) or any(not body.get(k) for k in required):
            return err(47003, "argument invalid!")
        if not str(body["touser"]).startswith("o"):
            return err(40003, "invalid openid")
        return body

    async def send(request: web.Request) -> web.Response:
        body = await read(request, ("touser", "msgtype"))
        if isinstance(body, web.Response):
            return body
        if body["msgtype"] not in ("text", "image", "link", "miniprogrampage"):
            return err(45162, "invalid msgtype")
        code = cs.check_send(str(body["touser"]))
        if code == 45015:
            return err(code, "response out of time limit or subscription is canceled")
        if code == 45047:
            return err(code, "out of response count limit")
        if code:
            return err(code, "error")
        cs.sent.append({**body, "at": cs.clock()})
        return err(0, "ok")

    async def typing(request: web.Request) -> web.Response:
        body = await read(request, ("touser", "command"))
        if isinstance(body, web.Response):
            return body
        touser = str(body["touser"])
        code = cs.check_typing(touser, body["command"])
        cs.typing_calls.append({
            "touser": touser, "command": body["command"], "errcode": code, "at": cs.clock(),
            "sent_before": sum(1 for m in cs.sent if m["touser"] == touser),
        })  # fmt: skip
        return err(code, "ok" if code == 0 else "typing refused")

    async def inject(request: web.Request) -> web.Response:
        spec = orjson.loads(await request.read())
        openid = str(spec.get("openid") or openid_for(str(spec.get("user", "buyer"))))
        values = cs.message(openid, spec)
        if values["MsgType"] == "event":
            cs.open(openid, "enter")
        else:
            cs.open(openid, "message")
        body, query = cs.envelope(
            values, str(spec.get("format", "xml")), str(spec.get("mode", "plain")),
            int(spec.get("key", 0)), str(spec.get("signature", "good")),
        )  # fmt: skip
        client = session()
        assert client is not None
        answers = []
        ctype = "text/xml" if spec.get("format", "xml") == "xml" else "application/json"
        for _ in range(max(1, min(int(spec.get("tries", 1)), 3))):
            status, text = 0, ""
            with suppress(aiohttp.ClientError, TimeoutError):
                async with client.post(
                    str(spec["url"]), params=query, data=body, headers={"Content-Type": ctype}
                ) as resp:
                    status, text = resp.status, await resp.text()
            answers.append({"status": status, "body": text})
        return web.json_response(
            {"openid": openid, "msg_id": values.get("MsgId"), "create_time": values["CreateTime"],
             "answers": answers, "body": body.decode(), "query": query}
        )  # fmt: skip

    async def fail(request: web.Request) -> web.Response:
        spec = orjson.loads(await request.read())
        cs.forced[str(spec["openid"])] = [int(spec["errcode"])] * int(spec.get("times", 1))
        return web.json_response({"ok": True})

    async def messages(request: web.Request) -> web.Response:
        touser = request.query.get("touser")
        found = [m for m in cs.sent if touser is None or m["touser"] == touser]
        return web.json_response({"messages": found})

    app.router.add_post("/cgi-bin/message/custom/send", send)
    app.router.add_post("/cgi-bin/message/custom/typing", typing)

    async def typing_log(request: web.Request) -> web.Response:
        touser = request.query.get("touser")
        found = [t for t in cs.typing_calls if touser is None or t["touser"] == touser]
        return web.json_response({"typing": found})

    app.router.add_post("/dev/support/push", inject)
    app.router.add_get("/dev/support/typing", typing_log)
    app.router.add_post("/dev/support/fail", fail)
    app.router.add_get("/dev/support/messages", messages)
