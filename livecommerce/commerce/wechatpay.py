"""WeChat Pay v3 notification crypto: signature verification and resource decryption.

A notification is ``POST``ed with the headers ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``,
``Wechatpay-Signature`` (base64 SHA256-with-RSA, PKCS#1 v1.5, over
``"{timestamp}\\n{nonce}\\n{body}\\n"``) and ``Wechatpay-Serial`` (which platform key signed).
Its JSON body carries ``resource``: the transaction, AEAD_AES_256_GCM-encrypted with the
merchant's 32-byte APIv3 key, a 12-byte ``nonce`` and ``associated_data``.

The signing/encrypting half is here too, for the dev pay simulator in the fake WeChat server and
for tests; production never signs (it only holds platform *public* keys).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from livecommerce.config import Settings, WechatPayConfig
from livecommerce.errors import Unauthorized, ValidationError

ALGORITHM = "AEAD_AES_256_GCM"
MAX_HEADER_CHARS = 1024


@dataclass(frozen=True, slots=True)
class PayKeys:
    """What the server needs to accept notifications: never a private key in production."""

    mch_id: str
    app_id: str
    apiv3_key: bytes = field(repr=False)
    platform_keys: Mapping[str, rsa.RSAPublicKey] = field(repr=False)
    max_age_seconds: int = 300


@dataclass(frozen=True, slots=True)
class DevPlatform:
    """The dev stand-in for WeChat's side: a platform signing key and the merchant's APIv3 key.

    Generated in memory at startup (development only) and shared by the app and the in-process
    fake WeChat server, so no private key is ever committed or written anywhere.
    """

    mch_id: str
    serial: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    apiv3_key: bytes = field(repr=False)
    # The merchant's API key pair (ours in production, from ``wechatpay.merchant_key_file``):
    # signs requests and ``paySign``; the fake holds its public half to verify them.
    merchant_serial: str = ""
    merchant_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)

    @classmethod
    def generate(cls, mch_id: str = "1900000001") -> DevPlatform:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(
            mch_id=mch_id,
            serial="DEV" + secrets.token_hex(16).upper(),
            private_key=key,
            apiv3_key=secrets.token_hex(16).encode(),
            merchant_serial="MCH" + secrets.token_hex(16).upper(),
            merchant_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    def pay_keys(self, app_id: str, max_age_seconds: int) -> PayKeys:
        return PayKeys(
            mch_id=self.mch_id,
            app_id=app_id,
            apiv3_key=self.apiv3_key,
            platform_keys={self.serial: self.private_key.public_key()},
            max_age_seconds=max_age_seconds,
        )


def load_pay_keys(settings: Settings) -> PayKeys:
    """The configured keys: every ``<serial>.pem`` (public key or certificate) in the dir."""
    cfg = settings.wechatpay
    keys: dict[str, rsa.RSAPublicKey] = {}
    for path in sorted(Path(cfg.platform_keys_dir).glob("*.pem")):
        keys[path.stem] = _load_public_key(path.read_bytes(), path)
    if not keys:
        raise ValueError(f"no <serial>.pem platform keys in {cfg.platform_keys_dir}")
    return PayKeys(
        mch_id=cfg.mch_id,
        app_id=settings.wechat.app_id,
        apiv3_key=cfg.apiv3_key.encode(),
        platform_keys=keys,
        max_age_seconds=cfg.notify_max_age_seconds,
    )


def load_merchant_key(cfg: WechatPayConfig) -> rsa.RSAPrivateKey:
    """The merchant API private key (``wechatpay.merchant_key_file``, PEM, unencrypted)."""
    key = serialization.load_pem_private_key(Path(cfg.merchant_key_file).read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{cfg.merchant_key_file}: not an RSA private key")
    return key


def _load_public_key(pem: bytes, path: Path) -> rsa.RSAPublicKey:
    key: object
    if b"BEGIN CERTIFICATE" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path}: not an RSA public key")
    return key


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def verify_notification(
    keys: PayKeys, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> None:
    """Check the Wechatpay-* headers against the raw body.

    Raises:
        Unauthorized: a header is missing, the timestamp is stale, the serial unknown or the
            signature does not verify (a forged or tampered notification).
    """
    values = {}
    for name in ("Timestamp", "Nonce", "Signature", "Serial"):
        value = headers.get(f"Wechatpay-{name}", "")
        if not value or len(value) > MAX_HEADER_CHARS:
            raise Unauthorized(f"missing or bad Wechatpay-{name} header", code="bad_signature")
        values[name] = value
    try:
        timestamp = int(values["Timestamp"])
    except ValueError:
        raise Unauthorized("bad Wechatpay-Timestamp", code="bad_signature") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > keys.max_age_seconds:
        raise Unauthorized("stale Wechatpay-Timestamp", code="stale_notification")
    public_key = keys.platform_keys.get(values["Serial"])
    if public_key is None:
        raise Unauthorized("unknown Wechatpay-Serial", code="unknown_serial")
    try:
        signature = base64.b64decode(values["Signature"], validate=True)
        public_key.verify(
            signature,
            signed_message(values["Timestamp"], values["Nonce"], body),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (binascii.Error, ValueError, InvalidSignature):
        raise Unauthorized("signature does not verify", code="bad_signature") from None


def decrypt_resource(apiv3_key: bytes, resource: Any) -> dict[str, Any]:
    """The decrypted transaction of a notification's ``resource`` object.

    Raises:
        ValidationError: on ``resource`` — wrong shape or algorithm, or it does not decrypt
            (tampered ciphertext, another merchant's key).
    """
    if not isinstance(resource, dict):
        raise ValidationError("resource", "must be an object")
    if resource.get("algorithm") != ALGORITHM:
        raise ValidationError("resource.algorithm", f"must be {ALGORITHM}")
    nonce, ciphertext, aad = (
        resource.get("nonce"),
        resource.get("ciphertext"),
        resource.get("associated_data", ""),
    )
    if not isinstance(nonce, str) or len(nonce.encode()) != 12:
        raise ValidationError("resource.nonce", "must be a 12-byte string")
    if not isinstance(ciphertext, str) or not isinstance(aad, str):
        raise ValidationError("resource.ciphertext", "must be a base64 string")
    try:
        plain = AESGCM(apiv3_key).decrypt(
            nonce.encode(), base64.b64decode(ciphertext, validate=True), aad.encode()
        )
        data = orjson.loads(plain)
    except (binascii.Error, ValueError, InvalidTag, orjson.JSONDecodeError):
        raise ValidationError("resource", "does not decrypt with the APIv3 key") from None
    if not isinstance(data, dict):
        raise ValidationError("resource", "decrypted payload is not an object")
    return data


def encrypt_resource(
    apiv3_key: bytes, transaction: Mapping[str, Any], associated_data: str = "transaction"
) -> dict[str, str]:
    """The ``resource`` object WeChat would send for ``transaction`` (dev simulator, tests)."""
    nonce = secrets.token_hex(6)  # 12 ASCII characters = 12 bytes, as WeChat sends
    ciphertext = AESGCM(apiv3_key).encrypt(
        nonce.encode(), orjson.dumps(transaction), associated_data.encode()
    )
    return {
        "algorithm": ALGORITHM,
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": associated_data,
        "original_type": "transaction",
        "nonce": nonce,
    }


def sign_headers(
    private_key: rsa.RSAPrivateKey,
    serial: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The Wechatpay-* headers for ``body`` signed with ``private_key`` (dev simulator, tests)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    signature = private_key.sign(
        signed_message(ts, nonce, body), padding.PKCS1v15(), hashes.SHA256()
    )
    return {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Content-Type": "application/json",
    }


def notification_body(
    resource: Mapping[str, str],
    *,
    event_id: str | None = None,
    event_type: str = "TRANSACTION.SUCCESS",
) -> bytes:
    """A notification envelope (TRANSACTION.SUCCESS, REFUND.SUCCESS, ...) around ``resource``."""
    return orjson.dumps(
        {
            "id": event_id or secrets.token_hex(16),
            "create_time": time.strftime(
                "%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600)
            ),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功" if event_type.startswith("TRANSACTION") else "退款通知",
            "resource": dict(resource),
        }
    )
