"""A fake WeChat server for development and tests: login, messages and a pay simulator.

It answers like the real API (HTTP 200 with ``errcode``/``errmsg`` on errors) so the real client
code runs against it over real HTTP. The embedded default starts it in-process on its own port
(see ``commerce.routes``); production points ``wechat.base_url`` at the real API instead.

**Login** — ``GET /sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code``.
A ``js_code`` is ``[control~]user[.anything]``: the part before the first ``.`` names the user
(same user = same openid; users named ``union*`` also get a unionid). Each code works once (a
reused one gets 40163). The optional control prefix picks an error:

* ``e40029~...`` invalid code, ``e45011~...`` rate limited, ``e40226~...`` high-risk user,
  ``e<other>~...`` that errcode;
* ``busy<N>~...`` answers -1 (system busy) to the first N calls for that code, then succeeds;
* ``html~...`` answers HTTP 500 with an HTML page (a broken upstream).

**Messages** — ``GET /cgi-bin/token`` (client_credential), ``POST
/cgi-bin/message/subscribe/send`` with ``?access_token=``; users named ``refuse*`` have
refused subscribe messages (43101). Sent messages are listed at ``GET /dev/messages``.

**Pay** — ``POST /v3/pay/transactions/jsapi`` records a prepay (the merchant signature on the
request is not checked). ``POST /dev/pay`` simulates the buyer paying: ``{"prepay_id"}`` or
``{"out_trade_no", "total", "notify_url"}``, optionally ``"transaction_id"`` (resend a known
one, as WeChat does), ``"amount"`` or ``"mchid"`` overrides (to test rejection). It sends one
correctly signed, encrypted notification and answers what the notify URL said, plus the exact
body and headers it sent (tests replay them byte for byte). WeChat's own retry schedule is not
simulated: call it again.

**Customer service** — the send and typing APIs with WeChat's reply window, and
``/dev/support/push`` to push buyer messages signed/encrypted like WeChat: see
:mod:`livecommerce.devtools.fake_wechat_cs` (kept there, separate from the rest).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from livecommerce.commerce import wechatpay
from livecommerce.commerce.wechatpay import DevPlatform
from livecommerce.devtools import fake_wechat_cs

_CODE = re.compile(r"^(?:(?P<ctl>[a-z0-9]+)~)?(?P<user>[A-Za-z0-9_-]{1,64})(?:\.[A-Za-z0-9._-]*)?$")
_ERRMSG = {
    40029: "invalid code",
    40163: "code been used",
    45011: "api minute-quota reach limit mustslower retry next minute",
    40226: "invalid user: high risk user",
    -1: "system error",
}


def openid_for(app_id: str, user: str) -> str:
    """The openid the fake gives ``user`` of ``app_id`` (stable, so tests can predict it)."""
    return "o" + hashlib.sha256(f"{app_id}|{user}".encode()).hexdigest()[:27]


def unionid_for(user: str) -> str:
    return "u" + hashlib.sha256(f"union|{user}".encode()).hexdigest()[:27]


@dataclass
class Prepay:
    out_trade_no: str
    total: int
    notify_url: str
    openid: str
    app_id: str


@dataclass
class FakeWechat:
    """State of one fake WeChat: its credentials, codes seen, prepays and messages."""

    app_id: str
    app_secret: str
    platform: DevPlatform
    used_codes: set[str] = field(default_factory=set)
    busy_calls: dict[str, int] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)
    prepays: dict[str, Prepay] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    login_calls: int = 0
    session: aiohttp.ClientSession | None = None
    # Customer service (fake_wechat_cs): its state; token and crypt set by support.routes.
    cs: fake_wechat_cs.FakeCustomerService | None = None

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/sns/jscode2session", self.jscode2session)
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/message/subscribe/send", self.subscribe_send)
        app.router.add_post("/v3/pay/transactions/jsapi", self.jsapi_prepay)
        app.router.add_post("/dev/pay", self.dev_pay)
        app.router.add_get("/dev/messages", self.dev_messages)
        app.cleanup_ctx.append(self._client_ctx)
        self._add_customer_service(app)
        return app

    def _add_customer_service(self, app: web.Application) -> None:
        """The customer-service routes (send, typing, /dev/support/*): fake_wechat_cs."""
        if self.cs is None:
            self.cs = fake_wechat_cs.FakeCustomerService(self.app_id)
        fake_wechat_cs.add_routes(
            app, self.cs, self.access_tokens,
            lambda user: openid_for(self.app_id, user), lambda: self.session,
        )  # fmt: skip

    async def _client_ctx(self, app: web.Application) -> Any:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        yield
        await self.session.close()

    # -- login ------------------------------------------------------------------------------

    async def jscode2session(self, request: web.Request) -> web.Response:
        self.login_calls += 1
        q = request.query
        if q.get("appid") != self.app_id:
            return _err(40013, "invalid appid")
        if q.get("secret") != self.app_secret:
            return _err(40125, "invalid appsecret")
        if q.get("grant_type") != "authorization_code":
            return _err(40002, "invalid grant_type")
        code = q.get("js_code", "")
        m = _CODE.match(code)
        if m is None or code in self.used_codes:
            return _err(40163 if code in self.used_codes else 40029)
        ctl, user = m.group("ctl"), m.group("user")
        if ctl == "html":
            return web.Response(
                status=500, text="<html>502 Bad Gateway</html>", content_type="text/html"
            )
        if ctl and ctl.startswith("busy") and ctl[4:].isdigit():
            seen = self.busy_calls.get(code, 0)
            self.busy_calls[code] = seen + 1
            if seen < int(ctl[4:]):
                return _err(-1)
        elif ctl and ctl.startswith("e") and ctl[1:].isdigit():
            return _err(int(ctl[1:]))
        elif ctl:
            return _err(40029)
        self.used_codes.add(code)
        body: dict[str, Any] = {
            "openid": openid_for(self.app_id, user),
            "session_key": secrets.token_urlsafe(18),
        }
        if user.startswith("union"):
            body["unionid"] = unionid_for(user)
        return _text_json(body)

    # -- messages ---------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != self.app_id:
            return _err(40013, "invalid appid")
        if q.get("secret") != self.app_secret:
            return _err(40125, "invalid appsecret")
        token = secrets.token_urlsafe(24)
        self.access_tokens.add(token)
        return _text_json({"access_token": token, "expires_in": 7200})

    async def _message(
        self, request: web.Request, kind: str, required: tuple[str, ...]
    ) -> web.Response:
        if request.query.get("access_token") not in self.access_tokens:
            return _err(40001, "invalid credential, access_token is invalid or not latest")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _err(47001, "data format error")
        if not isinstance(body, dict) or any(not body.get(k) for k in required):
            return _err(47003, "argument invalid!")
        touser = str(body["touser"])
        if not re.fullmatch(r"o[0-9a-f]{27}", touser):
            return _err(40003, "invalid openid")
        if kind == "subscribe" and any(
            touser == openid_for(self.app_id, f"refuse{i}") for i in ("", "1", "2")
        ):
            return _err(43101, "user refuse to accept the msg")
        self.messages.append({"kind": kind, **body})
        return _text_json({"errcode": 0, "errmsg": "ok", "msgid": len(self.messages)})

    async def subscribe_send(self, request: web.Request) -> web.Response:
        return await self._message(request, "subscribe", ("touser", "template_id", "data"))

    async def dev_messages(self, request: web.Request) -> web.Response:
        return _json({"messages": self.messages})

    # -- pay --------------------------------------------------------------------------------

    async def jsapi_prepay(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            amount = body["amount"]["total"]
            prepay = Prepay(
                out_trade_no=str(body["out_trade_no"]),
                total=amount if isinstance(amount, int) and not isinstance(amount, bool) else -1,
                notify_url=str(body["notify_url"]),
                openid=str(body["payer"]["openid"]),
                app_id=str(body["appid"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _pay_err(400, "PARAM_ERROR", "missing or malformed parameter")
        if body.get("mchid") != self.platform.mch_id or prepay.app_id != self.app_id:
            return _pay_err(400, "MCH_NOT_EXISTS", "mchid/appid mismatch")
        if prepay.total <= 0:
            return _pay_err(400, "PARAM_ERROR", "amount.total must be a positive integer")
        prepay_id = "wx" + secrets.token_hex(16)
        self.prepays[prepay_id] = prepay
        return _json({"prepay_id": prepay_id})

    async def dev_pay(self, request: web.Request) -> web.Response:
        try:
            req = orjson.loads(await request.read())
            if "prepay_id" in req:
                prepay = self.prepays[str(req["prepay_id"])]
            else:
                prepay = Prepay(
                    out_trade_no=str(req["out_trade_no"]),
                    total=int(req["total"]),
                    notify_url=str(req["notify_url"]),
                    openid=str(req.get("openid", openid_for(self.app_id, "payer"))),
                    app_id=self.app_id,
                )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return _pay_err(400, "PARAM_ERROR", "give prepay_id, or out_trade_no+total+notify_url")
        txn_id = str(req.get("transaction_id") or "42000" + secrets.token_hex(12))
        total = req.get("amount", prepay.total)
        transaction = {
            "appid": prepay.app_id,
            "mchid": str(req.get("mchid", self.platform.mch_id)),
            "out_trade_no": prepay.out_trade_no,
            "transaction_id": txn_id,
            "trade_type": "JSAPI",
            "trade_state": str(req.get("trade_state", "SUCCESS")),
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": time.strftime(
                "%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600)
            ),
            "payer": {"openid": prepay.openid},
            "amount": {
                "total": total,
                "payer_total": total,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }
        resource = wechatpay.encrypt_resource(self.platform.apiv3_key, transaction)
        body = wechatpay.notification_body(resource)
        headers = wechatpay.sign_headers(self.platform.private_key, self.platform.serial, body)
        assert self.session is not None
        status, answer = 0, ""
        with suppress(aiohttp.ClientError, TimeoutError):
            async with self.session.post(prepay.notify_url, data=body, headers=headers) as resp:
                status, answer = resp.status, await resp.text()
        return _json(
            {
                "transaction_id": txn_id,
                "notify_status": status,
                "notify_response": answer,
                "notify_body": body.decode(),
                "notify_headers": headers,
            }
        )


def _text_json(body: Any) -> web.Response:
    # WeChat's login API answers JSON with a text/plain content type; clients must cope.
    return web.Response(body=orjson.dumps(body), content_type="text/plain")


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _err(code: int, message: str | None = None) -> web.Response:
    return _text_json({"errcode": code, "errmsg": message or _ERRMSG.get(code, "error")})


def _pay_err(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"code": code, "message": message}),
        content_type="application/json",
    )


async def start_fake(
    fake: FakeWechat, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve ``fake`` on ``host:port`` (0 = any free port); returns the runner and base URL."""
    runner = web.AppRunner(fake.make_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"
