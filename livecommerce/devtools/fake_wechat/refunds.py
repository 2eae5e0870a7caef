"""The fake WeChat Pay's refunds: create, query, and ``/dev/refunds/settle`` to finish them.

WeChat Pay v3, signed both ways like the real API (see
:mod:`~livecommerce.devtools.fake_wechat.pay_wire`): ``POST /v3/refund/domestic/refunds`` and
``GET .../refunds/{out_refund_no}`` make (idempotent per ``out_refund_no``, never more than
was paid) and query refunds, which stay PROCESSING until ``POST /dev/refunds/settle``
finishes them (``refund_final``) and sends the signed, encrypted REFUND.* notifications. Its
optional body ``{"status": "SUCCESS" | "CLOSED" | "ABNORMAL", "out_refund_no": "RF…"}`` ends
them (or that one) in that state instead; naming an ABNORMAL refund settles it as the
merchant's manual handling would. A CLOSED refund no longer counts toward what was paid (a new
``out_refund_no`` can refund that money again); asking again with a closed number answers the
closed refund.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from aiohttp import web

from livecommerce.devtools.fake_wechat import answers, pay_wire
from livecommerce.devtools.fake_wechat.pay_wire import PayWire
from livecommerce.devtools.fake_wechat.state import Refund


class RefundsApi(PayWire):
    """Refund create and query, ``/dev/refunds/settle``."""

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
            "create_time": pay_wire.now_cst(),
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
                    "success_time": pay_wire.now_cst(),
                    "user_received_account": "支付用户零钱",
                    "amount": {"total": r.total, "refund": r.refund, "payer_total": r.total,
                               "payer_refund": r.refund},
                }  # fmt: skip
                sent = await self._notify(
                    r.notify_url, resource, f"REFUND.{r.status}", original_type="refund"
                )
                self.refund_notices.append(sent)
        return answers.json({"settled": settled})
