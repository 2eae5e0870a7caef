"""The customer-service send and typing APIs of WeChat (``/cgi-bin/message/custom/...``).

========  ==========================================  ===============================
errcode   meaning                                     what the caller does
========  ==========================================  ===============================
0         sent                                        done
45015     reply window closed (or unsubscribed)       final: ledger closed, logged
45047     reply quota used up                         final: ledger full, logged
40003     invalid openid; 43019 blacklisted;          final, logged
          45162 bad type; 47001/47003 bad body
-1, HTTP  busy / transport failure                    transient: retried with backoff
40001/    access_token invalid or expired             a new token, once
42001
========  ==========================================  ===============================
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

FINAL = {45015, 45047, 40003, 43019, 45162, 47001, 47003, 45072, 45080, 45081}


class SendFailed(Exception):
    """A transient failure (network, busy, token): the reply may be tried again."""


@dataclass(slots=True)
class CsClient:
    session: aiohttp.ClientSession
    base_url: str
    app_id: str
    app_secret: str = field(repr=False)
    _token: str = field(default="", repr=False)
    _expires: float = 0.0

    async def send(self, body: dict[str, Any]) -> int:
        """POST ``body`` (``{touser, msgtype, ...}``) to the send API; returns WeChat's errcode
        (0 = sent; a :data:`FINAL` code = never retry).

        Raises:
            SendFailed: transient failure.
        """
        return await self._call("/cgi-bin/message/custom/send", body)

    async def typing(self, openid: str, typing: bool = True) -> int:
        """Show (or cancel) "typing..." to the buyer; returns the errcode (45080 = no message
        exchanged within 30 s, 45081 = already typing)."""
        command = "Typing" if typing else "CancelTyping"
        return await self._call(
            "/cgi-bin/message/custom/typing", {"touser": openid, "command": command}
        )

    async def _call(self, path: str, body: dict[str, Any]) -> int:
        for _ in range(2):
            token = await self._access_token()
            answer = await self._json(
                "POST", path, params={"access_token": token}, data=orjson.dumps(body)
            )
            errcode = answer.get("errcode", 0)
            if not isinstance(errcode, int):
                raise SendFailed("errcode is not an integer")
            if errcode in (40001, 42001):
                self._token = ""
                continue
            if errcode == 0 or errcode in FINAL:
                return errcode
            raise SendFailed(f"errcode {errcode}")
        raise SendFailed("access_token rejected twice")

    async def _access_token(self) -> str:
        if self._token and time.monotonic() < self._expires:
            return self._token
        got = await self._json(
            "GET", "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.app_id,
                    "secret": self.app_secret},
        )  # fmt: skip
        token, ttl = got.get("access_token"), got.get("expires_in", 7200)
        if not isinstance(token, str) or not isinstance(ttl, int):
            raise SendFailed(f"no access_token (errcode {got.get('errcode')})")
        self._token, self._expires = token, time.monotonic() + ttl - 300
        return token

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        url = self.base_url.rstrip("/") + path
        try:
            async with self.session.request(method, url, **kw) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise SendFailed(f"HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendFailed(type(exc).__name__) from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise SendFailed("non-JSON answer") from None
        if not isinstance(data, dict):
            raise SendFailed("non-object answer")
        return data
