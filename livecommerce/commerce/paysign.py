"""Merchant-side WeChat Pay v3 signatures: request ``Authorization`` and ``paySign``.

Every API request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
signature="…",timestamp="…",serial_no="…"`` where ``signature`` is base64 SHA256-with-RSA
(PKCS#1 v1.5) by the merchant API key over ``"{METHOD}\\n{path?query}\\n{timestamp}\\n{nonce}\\n
{body}\\n"``. ``wx.requestPayment``'s ``paySign`` is the same kind of signature over
``"{appId}\\n{timeStamp}\\n{nonceStr}\\n{package}\\n"``.

The verifying halves are used by the fake WeChat Pay (it refuses a request or a ``paySign`` that
does not verify with the merchant's public key, as the real one does) and by tests.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
_AUTH_PART = re.compile(r'(\w+)="([^"]*)"')


def _sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(
        key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


def _verifies(key: rsa.RSAPublicKey, message: str, signature: str) -> bool:
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            message.encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Merchant:
    """Who we are to WeChat Pay: merchant id, app id and the API key that signs for us."""

    mch_id: str
    app_id: str
    serial: str
    key: rsa.RSAPrivateKey

    def authorization(
        self, method: str, path: str, body: bytes, *, timestamp: int | None = None
    ) -> str:
        """The ``Authorization`` header of one request (``path`` includes the query string)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        message = f"{method}\n{path}\n{ts}\n{nonce}\n{body.decode()}\n"
        return (
            f'{SCHEMA} mchid="{self.mch_id}",nonce_str="{nonce}",'
            f'signature="{_sign(self.key, message)}",timestamp="{ts}",serial_no="{self.serial}"'
        )

    def request_payment(self, prepay_id: str) -> dict[str, str]:
        """The ``wx.requestPayment`` parameters for ``prepay_id`` (a fresh nonce and time)."""
        ts, nonce, package = str(int(time.time())), secrets.token_hex(16), f"prepay_id={prepay_id}"
        message = f"{self.app_id}\n{ts}\n{nonce}\n{package}\n"
        return {
            "appId": self.app_id,
            "timeStamp": ts,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": _sign(self.key, message),
        }


def verify_authorization(
    public_key: rsa.RSAPublicKey,
    header: str,
    method: str,
    path: str,
    body: bytes,
    *,
    mch_id: str,
    serial: str,
    max_age_seconds: int = 300,
) -> str | None:
    """Why a request's ``Authorization`` does not verify, or None when it does (fake, tests)."""
    if not header.startswith(SCHEMA + " "):
        return "missing or unknown authorization schema"
    parts = dict(_AUTH_PART.findall(header[len(SCHEMA) + 1 :]))
    if parts.get("mchid") != mch_id or parts.get("serial_no") != serial:
        return "mchid or serial_no mismatch"
    ts, nonce, signature = (
        parts.get("timestamp", ""),
        parts.get("nonce_str", ""),
        parts.get("signature", ""),
    )
    if not ts.isdigit() or abs(time.time() - int(ts)) > max_age_seconds:
        return "stale or bad timestamp"
    message = f"{method}\n{path}\n{ts}\n{nonce}\n{body.decode(errors='replace')}\n"
    return None if _verifies(public_key, message, signature) else "signature does not verify"


def verify_pay_sign(public_key: rsa.RSAPublicKey, params: dict[str, str]) -> bool:
    """Whether ``wx.requestPayment`` parameters carry a valid ``paySign`` (fake, tests)."""
    message = (
        f"{params.get('appId', '')}\n{params.get('timeStamp', '')}\n"
        f"{params.get('nonceStr', '')}\n{params.get('package', '')}\n"
    )
    return params.get("signType") == "RSA" and _verifies(
        public_key, message, params.get("paySign", "")
    )
