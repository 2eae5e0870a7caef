"""WeChat Pay v3 on the wire, shared by :mod:`~livecommerce.devtools.fake_wechat.pay` and
:mod:`~livecommerce.devtools.fake_wechat.refunds`: every request's merchant ``Authorization``
signature is verified with the merchant public key — 401 ``SIGN_ERROR`` otherwise — and every
answer is signed with the platform key, like the real API; notifications are signed and
encrypted; times are China Standard Time.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from livecommerce.commerce import paysign, wechatpay
from livecommerce.devtools.fake_wechat.state import WechatState


class PayWire(WechatState):
    """Signed requests, signed answers and notifications of WeChat Pay v3."""

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


def now_cst() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600))
