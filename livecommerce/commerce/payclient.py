"""The WeChat Pay v3 API client (aiohttp): JSAPI prepay, query, close, refund, refund query.

Each request is signed with the merchant key (:mod:`paysign`); each answer's ``Wechatpay-*``
signature is verified with the platform keys before it is believed (a forged or tampered answer
is a :class:`PayUnavailable`, like a network failure). WeChat's error bodies are
``{"code", "message"}`` with a 4xx/5xx status:

=============================  ===========================================  ======================
code                           meaning                                      raised
=============================  ===========================================  ======================
ORDERPAID                      prepay/close of an order already paid        :class:`OrderPaid`
ORDER_CLOSED                   prepay of a closed order                     :class:`OrderClosed`
ORDER_NOT_EXIST                query/close of an order WeChat never saw     :class:`PayNotFound`
RESOURCE_NOT_EXISTS            refund query of an unknown ``out_refund_no`` :class:`PayNotFound`
NOT_ENOUGH / INVALID_REQUEST   refund refused for good (amount, state)      :class:`PayRefused`
SYSTEM_ERROR, 5xx, network     transient                                    :class:`PayUnavailable`
=============================  ===========================================  ======================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from livecommerce.commerce import wechatpay
from livecommerce.commerce.paysign import Merchant
from livecommerce.commerce.wechatpay import PayKeys
from livecommerce.errors import Unauthorized

log = logging.getLogger("livecommerce.wechatpay")


class PayError(Exception):
    """A WeChat Pay call failed; ``code`` is WeChat's error code (or ours for transport)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class OrderPaid(PayError):
    """WeChat says the order is already paid (apply it from a query)."""


class OrderClosed(PayError):
    """WeChat says the order was closed: it can never be paid."""


class PayNotFound(PayError):
    """WeChat has no such order / refund."""


class PayRefused(PayError):
    """WeChat refused the request for good (retrying the same request will not help)."""


class PayUnavailable(PayError):
    """Transient: network, 5xx, SYSTEM_ERROR, or an answer whose signature does not verify."""


_FINAL = {
    "ORDERPAID": OrderPaid,
    "ORDER_CLOSED": OrderClosed,
    "ORDER_NOT_EXIST": PayNotFound,
    "RESOURCE_NOT_EXISTS": PayNotFound,
}


@dataclass(slots=True)
class WechatPayClient:
    """One merchant's client; ``base_url`` is https://api.mch.weixin.qq.com (or the fake)."""

    session: aiohttp.ClientSession
    base_url: str
    merchant: Merchant
    keys: PayKeys

    async def jsapi_prepay(
        self,
        *,
        out_trade_no: str,
        description: str,
        total_fen: int,
        openid: str,
        notify_url: str,
        time_expire: datetime,
    ) -> str:
        """Create (or, for the same ``out_trade_no``, get again) the JSAPI order: its prepay_id.

        Raises:
            OrderPaid, OrderClosed, PayRefused, PayUnavailable: see the module table.
        """
        body = {
            "appid": self.merchant.app_id,
            "mchid": self.merchant.mch_id,
            "description": description[:127] or "order",
            "out_trade_no": out_trade_no,
            "time_expire": time_expire.isoformat(timespec="seconds"),
            "notify_url": notify_url,
            "amount": {"total": total_fen, "currency": "CNY"},
            "payer": {"openid": openid},
        }
        answer = await self._call("POST", "/v3/pay/transactions/jsapi", body)
        prepay_id = answer.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise PayUnavailable("NO_PREPAY_ID", "answer without prepay_id")
        return prepay_id

    async def query_order(self, out_trade_no: str) -> dict[str, Any]:
        """The WeChat order (``trade_state``: SUCCESS, NOTPAY, CLOSED, REFUND, ...).

        Raises:
            PayNotFound: WeChat never saw this order. PayUnavailable: transient.
        """
        path = (
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}"
            f"?mchid={quote(self.merchant.mch_id)}"
        )
        return await self._call("GET", path, None)

    async def close_order(self, out_trade_no: str) -> None:
        """Close the WeChat order so it can no longer be paid (already closed: fine).

        Raises:
            OrderPaid: it was paid meanwhile. PayUnavailable: transient.
        """
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}/close"
        try:
            await self._call("POST", path, {"mchid": self.merchant.mch_id})
        except (OrderClosed, PayNotFound):
            return

    async def refund(
        self,
        *,
        out_refund_no: str,
        transaction_id: str,
        refund_fen: int,
        total_fen: int,
        reason: str,
        notify_url: str,
    ) -> dict[str, Any]:
        """Request a refund (same ``out_refund_no`` again = the same refund, WeChat-side).

        Returns the refund: ``refund_id``, ``status`` (PROCESSING, SUCCESS, ABNORMAL, CLOSED).

        Raises:
            PayRefused: refused for good. PayUnavailable: transient (call again, same number).
        """
        body = {
            "transaction_id": transaction_id,
            "out_refund_no": out_refund_no,
            "reason": reason[:80],
            "notify_url": notify_url,
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        return await self._call("POST", "/v3/refund/domestic/refunds", body)

    async def query_refund(self, out_refund_no: str) -> dict[str, Any]:
        """The refund's current state (``status``).

        Raises:
            PayNotFound: WeChat has no such refund. PayUnavailable: transient.
        """
        return await self._call("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no)}", None)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        raw_body = b"" if body is None else orjson.dumps(body)
        headers = {
            "Authorization": self.merchant.authorization(method, path, raw_body),
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = self.base_url.rstrip("/") + path
        try:
            async with self.session.request(method, url, data=raw_body, headers=headers) as resp:
                raw, status, answer_headers = await resp.read(), resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PayUnavailable("NETWORK", type(exc).__name__) from None
        try:
            wechatpay.verify_notification(self.keys, answer_headers, raw)
        except Unauthorized as exc:
            log.error("WeChat Pay answer to %s %s failed verification: %s", method, path, exc)
            raise PayUnavailable("BAD_SIGNATURE", str(exc)) from None
        try:
            data = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise PayUnavailable("BAD_ANSWER", f"HTTP {status}, not JSON") from None
        if not isinstance(data, dict):
            raise PayUnavailable("BAD_ANSWER", "not an object")
        if status < 300:
            return data
        code, message = str(data.get("code", "")), str(data.get("message", ""))[:200]
        if code in _FINAL:
            raise _FINAL[code](code, message)
        if status >= 500 or code in ("SYSTEM_ERROR", "FREQUENCY_LIMITED", ""):
            raise PayUnavailable(code or f"HTTP{status}", message)
        raise PayRefused(code, message)
