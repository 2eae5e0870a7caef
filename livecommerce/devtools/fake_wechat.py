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
/cgi-bin/message/subscribe/send`` with
``?access_token=``; users named ``refuse*`` have refused subscribe messages (43101). Sent messages
are listed at ``GET /dev/messages``. ``POST /wxa/msg_sec_check`` (content security v2) answers
``risky`` for text containing "risky" or "违规", ``review`` for "review", else ``pass``;
``POST /dev/sec-check`` ``{"down": true}`` makes it fail like an outage (errcode -1) until
``{"down": false}``, and ``"delay_ms"`` delays each answer (a slow WeChat).

**Pay** (WeChat Pay v3; every request's merchant ``Authorization`` signature is verified with
the merchant public key — 401 ``SIGN_ERROR`` otherwise — and every answer is signed with the
platform key, like the real API): ``POST /v3/pay/transactions/jsapi`` makes (or for the same
``out_trade_no`` returns again) a prepay; ``GET .../out-trade-no/{no}`` queries and ``POST
.../out-trade-no/{no}/close`` closes an order; ``POST /v3/refund/domestic/refunds`` and ``GET
.../refunds/{out_refund_no}`` make (idempotent per ``out_refund_no``, never more than was paid)
and query refunds, which stay PROCESSING until ``POST /dev/refunds/settle`` finishes them
(``refund_final``) and sends the signed, encrypted REFUND.* notifications. Its optional body
``{"status": "SUCCESS" | "CLOSED" | "ABNORMAL", "out_refund_no": "RF…"}`` ends them (or that one)
in that state instead; naming an ABNORMAL refund settles it as the merchant's manual handling
would. A CLOSED refund no longer counts toward what was paid (a new ``out_refund_no`` can
refund that money again); asking again with a closed number answers the closed refund.

``POST /dev/pay`` simulates the buyer paying: ``{"payment": <the wx.requestPayment params our
/api/orders/{id}/pay returned>}`` (``paySign`` verified), ``{"prepay_id"}``, or ``{"out_trade_no",
"total", "notify_url"}``; optionally ``"transaction_id"`` (resend a known one, as WeChat does),
``"amount"``/``"mchid"``/``"trade_state"`` overrides (to test rejection), ``"notify": false``
(the notification is lost: only a query finds the payment). A closed order cannot be paid
(except by the hand-built ``out_trade_no`` form, which simulates a payment racing the close).
It sends one correctly signed, encrypted notification and answers what the notify URL said,
plus the exact body and headers it sent (tests replay them byte for byte). WeChat's own retry
schedule is not simulated: call it again.

**Customer service** — the send and typing APIs with WeChat's reply window, and
``/dev/support/push`` to push buyer messages signed/encrypted like WeChat: see
:mod:`livecommerce.devtools.fake_wechat_cs` (kept there, separate from the rest).
"""

from __future__ import annotations

import asyncio
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

from livecommerce.commerce import paysign, wechatpay
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


INT32_MAX = 2**31 - 1
# What the fake's content-security check flags (msg_sec_check v2).
RISKY_WORDS = ("risky", "违规")
REVIEW_WORDS = ("review",)


@dataclass
class Prepay:
    """One WeChat Pay order as the fake sees it (keyed by ``out_trade_no``)."""

    out_trade_no: str
    total: int
    notify_url: str
    openid: str
    app_id: str
    prepay_id: str
    state: str = "NOTPAY"  # NOTPAY -> SUCCESS | CLOSED
    transaction_id: str = ""
    success_time: str = ""


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
    orders: dict[str, Prepay] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    prepay_calls: int = 0
    refunds: dict[str, Refund] = field(default_factory=dict)
    transactions: dict[str, Prepay] = field(default_factory=dict)
    refund_calls: int = 0
    # How the fake settles a refund: its final status, whether it notifies (False: only a
    # query finds out), and how many refund calls answer SYSTEM_ERROR first (outage).
    refund_final: str = "SUCCESS"
    refund_notify: bool = True
    refund_failures: int = 0
    refund_notices: list[dict[str, Any]] = field(default_factory=list)
    rejected_signatures: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    login_calls: int = 0
    checked_texts: list[str] = field(default_factory=list)
    checked_scenes: list[int] = field(default_factory=list)
    # The content check's dev switches (POST /dev/sec-check): an outage, a delay per answer.
    sec_check_down: bool = False
    sec_check_delay: float = 0.0
    session: aiohttp.ClientSession | None = None
    # Customer service (fake_wechat_cs): its state; token and crypt set by support.routes.
    cs: fake_wechat_cs.FakeCustomerService | None = None

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/sns/jscode2session", self.jscode2session)
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/message/subscribe/send", self.subscribe_send)
        app.router.add_post("/wxa/msg_sec_check", self.msg_sec_check)
        app.router.add_post("/v3/pay/transactions/jsapi", self.jsapi_prepay)
        app.router.add_get("/v3/pay/transactions/out-trade-no/{out_trade_no}", self.query_order)
        app.router.add_post(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close", self.close_order
        )
        app.router.add_post("/v3/refund/domestic/refunds", self.create_refund)
        app.router.add_get("/v3/refund/domestic/refunds/{out_refund_no}", self.query_refund)
        app.router.add_post("/dev/pay", self.dev_pay)
        app.router.add_post("/dev/refunds/settle", self.dev_settle_refunds)
        app.router.add_get("/dev/messages", self.dev_messages)
        app.router.add_post("/dev/sec-check", self.dev_sec_check)
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

    async def msg_sec_check(self, request: web.Request) -> web.Response:
        """Content security v2: text containing a word of ``RISKY_WORDS`` is ``risky``,
        ``REVIEW_WORDS`` ``review``, anything else ``pass``."""
        if request.query.get("access_token") not in self.access_tokens:
            return _err(40001, "invalid credential, access_token is invalid or not latest")
        if self.sec_check_delay:
            await asyncio.sleep(self.sec_check_delay)
        if self.sec_check_down:
            return _err(-1, "system error")
        try:
            body = orjson.loads(await request.read())
            content, version = str(body["content"]), body.get("version")
            openid = str(body["openid"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _err(47001, "data format error")
        if version != 2 or not re.fullmatch(r"o[0-9a-f]{27}", openid):
            return _err(40003 if version == 2 else 47003, "invalid openid or version")
        lowered = content.lower()
        suggest, label = "pass", 100
        if any(w in lowered for w in RISKY_WORDS):
            suggest, label = "risky", 20001
        elif any(w in lowered for w in REVIEW_WORDS):
            suggest, label = "review", 21000
        self.checked_texts.append(content)
        self.checked_scenes.append(body.get("scene"))
        return _text_json({
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
        return _json({"down": self.sec_check_down, "delay_ms": int(self.sec_check_delay * 1000)})

    async def dev_messages(self, request: web.Request) -> web.Response:
        return _json({"messages": self.messages})

    # -- pay --------------------------------------------------------------------------------

    def _pay_answer(self, status: int, body: Any) -> web.Response:
        """A WeChat Pay answer, signed with the platform key like the real one (204: no body)."""
        raw = b"" if body is None else orjson.dumps(body)
        headers = wechatpay.sign_headers(self.platform.private_key, self.platform.serial, raw)
        if body is None:
            headers.pop("Content-Type")
        return web.Response(status=status, body=raw or None, headers=headers)

    def _pay_err(self, status: int, code: str, message: str) -> web.Response:
        return self._pay_answer(status, {"code": code, "message": message})

    async def _signed_request(self, request: web.Request) -> tuple[bytes, web.Response | None]:
        """The raw body, or the 401 WeChat answers when the merchant signature is wrong."""
        raw = await request.read()
        merchant = self.platform.merchant_key
        if merchant is None:
            return raw, None
        why = paysign.verify_authorization(
            merchant.public_key(),
            request.headers.get("Authorization", ""),
            request.method,
            request.path_qs,
            raw,
            mch_id=self.platform.mch_id,
            serial=self.platform.merchant_serial,
        )
        if why is not None:
            self.rejected_signatures += 1
            return raw, self._pay_err(401, "SIGN_ERROR", why)
        return raw, None

    async def jsapi_prepay(self, request: web.Request) -> web.Response:
        raw, refused = await self._signed_request(request)
        if refused is not None:
            return refused
        try:
            body = orjson.loads(raw)
            amount = body["amount"]["total"]
            out_trade_no = str(body["out_trade_no"])
            total = amount if isinstance(amount, int) and not isinstance(amount, bool) else -1
            notify_url, openid = str(body["notify_url"]), str(body["payer"]["openid"])
            app_id = str(body["appid"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self._pay_err(400, "PARAM_ERROR", "missing or malformed parameter")
        if body.get("mchid") != self.platform.mch_id or app_id != self.app_id:
            return self._pay_err(400, "MCH_NOT_EXISTS", "mchid/appid mismatch")
        if not 0 < total <= INT32_MAX:
            return self._pay_err(400, "PARAM_ERROR", "amount.total must be 1..2^31-1 fen")
        self.prepay_calls += 1
        known = self.orders.get(out_trade_no)
        if known is not None:
            if known.state == "SUCCESS":
                return self._pay_err(400, "ORDERPAID", "order already paid")
            if known.state == "CLOSED":
                return self._pay_err(400, "ORDER_CLOSED", "order closed")
            if known.total != total or known.openid != openid:
                return self._pay_err(400, "INVALID_REQUEST", "out_trade_no reused, params differ")
            return self._pay_answer(200, {"prepay_id": known.prepay_id})
        prepay = Prepay(
            out_trade_no, total, notify_url, openid, app_id, "wx" + secrets.token_hex(16)
        )
        self.orders[out_trade_no] = prepay
        self.prepays[prepay.prepay_id] = prepay
        return self._pay_answer(200, {"prepay_id": prepay.prepay_id})

    async def query_order(self, request: web.Request) -> web.Response:
        _, refused = await self._signed_request(request)
        if refused is not None:
            return refused
        order = self.orders.get(request.match_info["out_trade_no"])
        if order is None or request.query.get("mchid") != self.platform.mch_id:
            return self._pay_err(404, "ORDER_NOT_EXIST", "no such order")
        return self._pay_answer(200, self._transaction(order))

    async def close_order(self, request: web.Request) -> web.Response:
        _, refused = await self._signed_request(request)
        if refused is not None:
            return refused
        order = self.orders.get(request.match_info["out_trade_no"])
        if order is None:
            # Closing an order WeChat never saw is fine: nobody can pay it now either.
            order = Prepay(request.match_info["out_trade_no"], 0, "", "", self.app_id, "")
            self.orders[order.out_trade_no] = order
        if order.state == "SUCCESS":
            return self._pay_err(400, "ORDERPAID", "order already paid")
        order.state = "CLOSED"
        self.closed.append(order.out_trade_no)
        return self._pay_answer(204, None)

    # -- refunds ------------------------------------------------------------------------------

    async def create_refund(self, request: web.Request) -> web.Response:
        raw, refused = await self._signed_request(request)
        if refused is not None:
            return refused
        self.refund_calls += 1
        if self.refund_failures > 0:
            self.refund_failures -= 1
            return self._pay_err(500, "SYSTEM_ERROR", "system busy, try again")
        try:
            body = orjson.loads(raw)
            number, txn = str(body["out_refund_no"]), str(body["transaction_id"])
            amount, total = int(body["amount"]["refund"]), int(body["amount"]["total"])
            notify_url = str(body.get("notify_url", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return self._pay_err(400, "PARAM_ERROR", "missing or malformed parameter")
        known = self.refunds.get(number)
        if known is not None:
            return self._pay_answer(200, self._refund_view(known))
        paid = self.transactions.get(txn)
        if paid is None:
            return self._pay_err(404, "RESOURCE_NOT_EXISTS", "no such transaction")
        already = sum(
            r.refund for r in self.refunds.values()
            if r.transaction_id == txn and r.status != "CLOSED"
        )  # fmt: skip
        if total != paid.total or amount <= 0 or already + amount > paid.total:
            return self._pay_err(400, "INVALID_REQUEST", "refund exceeds the payment")
        refund = Refund(
            number, "50300" + secrets.token_hex(10), txn, paid.out_trade_no, amount, total,
            notify_url,
        )  # fmt: skip
        self.refunds[number] = refund
        return self._pay_answer(200, self._refund_view(refund))

    async def query_refund(self, request: web.Request) -> web.Response:
        _, refused = await self._signed_request(request)
        if refused is not None:
            return refused
        refund = self.refunds.get(request.match_info["out_refund_no"])
        if refund is None:
            return self._pay_err(404, "RESOURCE_NOT_EXISTS", "no such refund")
        return self._pay_answer(200, self._refund_view(refund))

    def _refund_view(self, r: Refund) -> dict[str, Any]:
        return {
            "refund_id": r.refund_id,
            "out_refund_no": r.out_refund_no,
            "transaction_id": r.transaction_id,
            "out_trade_no": r.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "status": r.status,
            "create_time": _now_cst(),
            "amount": {"refund": r.refund, "total": r.total, "payer_refund": r.refund,
                       "payer_total": r.total, "currency": "CNY"},
        }  # fmt: skip

    async def dev_settle_refunds(self, request: web.Request) -> web.Response:
        """Finish every PROCESSING refund (``refund_final``, or the body's ``status``; only the
        body's ``out_refund_no`` if given, which may be ABNORMAL) and notify (``refund_notify``)."""
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        body = body if isinstance(body, dict) else {}
        final = str(body.get("status") or self.refund_final)
        if final not in ("SUCCESS", "CLOSED", "ABNORMAL"):
            return web.json_response({"error": "status: SUCCESS, CLOSED or ABNORMAL"}, status=400)
        only = body.get("out_refund_no")
        settled = []
        for r in self.refunds.values():
            if only is not None and r.out_refund_no != only:
                continue
            if r.status != "PROCESSING" and not (only is not None and r.status == "ABNORMAL"):
                continue
            r.status = final
            settled.append(r.out_refund_no)
            if self.refund_notify and r.notify_url:
                resource = {
                    "mchid": self.platform.mch_id,
                    "out_trade_no": r.out_trade_no,
                    "transaction_id": r.transaction_id,
                    "out_refund_no": r.out_refund_no,
                    "refund_id": r.refund_id,
                    "refund_status": r.status,
                    "success_time": _now_cst(),
                    "user_received_account": "支付用户零钱",
                    "amount": {"total": r.total, "refund": r.refund, "payer_total": r.total,
                               "payer_refund": r.refund},
                }  # fmt: skip
                sent = await self._notify(
                    r.notify_url, resource, f"REFUND.{r.status}", original_type="refund"
                )
                self.refund_notices.append(sent)
        return _json({"settled": settled})

    def _transaction(self, order: Prepay, **overrides: Any) -> dict[str, Any]:
        total = overrides.get("amount", order.total)
        return {
            "appid": order.app_id,
            "mchid": str(overrides.get("mchid", self.platform.mch_id)),
            "out_trade_no": order.out_trade_no,
            "transaction_id": order.transaction_id,
            "trade_type": "JSAPI",
            "trade_state": str(overrides.get("trade_state", order.state)),
            "trade_state_desc": "支付成功" if order.state == "SUCCESS" else order.state,
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": order.success_time,
            "payer": {"openid": order.openid},
            "amount": {
                "total": total,
                "payer_total": total,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }

    async def dev_pay(self, request: web.Request) -> web.Response:
        try:
            req = orjson.loads(await request.read())
            if "payment" in req:
                # What the mini-program hands wx.requestPayment: paySign must verify.
                params = {str(k): str(v) for k, v in dict(req["payment"]).items()}
                merchant = self.platform.merchant_key
                if merchant is None or not paysign.verify_pay_sign(merchant.public_key(), params):
                    return _pay_err(400, "SIGN_ERROR", "paySign does not verify")
                prepay_id = params["package"].removeprefix("prepay_id=")
                prepay = self.prepays[prepay_id]
            elif "prepay_id" in req:
                prepay = self.prepays[str(req["prepay_id"])]
            else:
                out_trade_no = str(req["out_trade_no"])
                known = self.orders.get(out_trade_no)
                prepay = Prepay(
                    out_trade_no=out_trade_no,
                    total=int(req["total"]),
                    notify_url=str(req["notify_url"]),
                    openid=str(req.get("openid", openid_for(self.app_id, "payer"))),
                    app_id=self.app_id,
                    prepay_id="",
                )
                if known is not None and known.state == "CLOSED":
                    prepay.state = "CLOSED"
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return _pay_err(
                400, "PARAM_ERROR", "give payment, prepay_id, or out_trade_no+total+notify_url"
            )
        if prepay.state == "CLOSED" and "out_trade_no" not in req:
            return _pay_err(400, "ORDER_CLOSED", "this order was closed: it cannot be paid")
        txn_id = str(req.get("transaction_id") or "42000" + secrets.token_hex(12))
        if str(req.get("trade_state", "SUCCESS")) == "SUCCESS":
            prepay.state, prepay.transaction_id = "SUCCESS", txn_id
            prepay.success_time = _now_cst()
            self.transactions[txn_id] = Prepay(
                prepay.out_trade_no, prepay.total, "", prepay.openid, prepay.app_id, "",
                "SUCCESS", txn_id,
            )  # fmt: skip
            self.orders.setdefault(prepay.out_trade_no, prepay)
            if self.orders[prepay.out_trade_no] is not prepay:
                self.orders[prepay.out_trade_no].state = "SUCCESS"
                self.orders[prepay.out_trade_no].transaction_id = txn_id
        else:
            prepay.transaction_id = txn_id
        transaction = self._transaction(prepay, **{
            k: req[k] for k in ("amount", "mchid", "trade_state") if k in req
        })  # fmt: skip
        if req.get("notify", True) is False:
            # The notification is "lost": only a query will find the payment.
            return _json({"transaction_id": txn_id, "notify_status": 0})
        return _json(
            {"transaction_id": txn_id, **await self._notify(prepay.notify_url, transaction)}
        )

    async def _notify(
        self,
        url: str,
        resource_obj: dict[str, Any],
        event_type: str = "TRANSACTION.SUCCESS",
        original_type: str = "transaction",
    ) -> dict[str, Any]:
        """Send one signed, encrypted notification to ``url``; its answer and what was sent."""
        resource = wechatpay.encrypt_resource(
            self.platform.apiv3_key, resource_obj, associated_data=original_type
        )
        resource["original_type"] = original_type
        body = wechatpay.notification_body(resource, event_type=event_type)
        headers = wechatpay.sign_headers(self.platform.private_key, self.platform.serial, body)
        assert self.session is not None
        status, answer = 0, ""
        with suppress(aiohttp.ClientError, TimeoutError):
            async with self.session.post(url, data=body, headers=headers) as resp:
                status, answer = resp.status, await resp.text()
        return {
            "notify_status": status,
            "notify_response": answer,
            "notify_body": body.decode(),
            "notify_headers": headers,
        }


@dataclass
class Refund:
    """One refund as the fake sees it (keyed by ``out_refund_no``)."""

    out_refund_no: str
    refund_id: str
    transaction_id: str
    out_trade_no: str
    refund: int
    total: int
    notify_url: str
    status: str = "PROCESSING"


def _now_cst() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600))


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
