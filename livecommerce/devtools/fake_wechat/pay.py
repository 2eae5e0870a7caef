"""The fake WeChat Pay's orders: JSAPI prepay, query, close, and ``/dev/pay`` (the buyer pays).

**Pay** (WeChat Pay v3; signed both ways like the real API: see
:mod:`~livecommerce.devtools.fake_wechat.pay_wire`): ``POST /v3/pay/transactions/jsapi`` makes
(or for the same ``out_trade_no`` returns again) a prepay; ``GET .../out-trade-no/{no}``
queries and ``POST .../out-trade-no/{no}/close`` closes an order. Refunds:
:mod:`~livecommerce.devtools.fake_wechat.refunds`.

``POST /dev/pay`` simulates the buyer paying: ``{"payment": <the wx.requestPayment params our
/api/orders/{id}/pay returned>}`` (``paySign`` verified), ``{"prepay_id"}``, or ``{"out_trade_no",
"total", "notify_url"}``; optionally ``"transaction_id"`` (resend a known one, as WeChat does),
``"amount"``/``"mchid"``/``"trade_state"`` overrides (to test rejection), ``"notify": false``
(the notification is lost: only a query finds the payment). A closed order cannot be paid
(except by the hand-built ``out_trade_no`` form, which simulates a payment racing the close).
It sends one correctly signed, encrypted notification and answers what the notify URL said,
plus the exact body and headers it sent (tests replay them byte for byte). WeChat's own retry
schedule is not simulated: call it again.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from aiohttp import web

from livecommerce.commerce import paysign
from livecommerce.devtools.fake_wechat import answers, pay_wire
from livecommerce.devtools.fake_wechat.login import openid_for
from livecommerce.devtools.fake_wechat.pay_wire import PayWire
from livecommerce.devtools.fake_wechat.state import Prepay

INT32_MAX = 2**31 - 1


class PayApi(PayWire):
    """JSAPI prepay, order query and close, ``/dev/pay``."""

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
            prepay.success_time = pay_wire.now_cst()
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
            return answers.json({"transaction_id": txn_id, "notify_status": 0})
        return answers.json(
            {"transaction_id": txn_id, **await self._notify(prepay.notify_url, transaction)}
        )


def _pay_err(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"code": code, "message": message}),
        content_type="application/json",
    )
