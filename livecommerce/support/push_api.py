"""HTTP: the mini-program message-push endpoint WeChat calls (``/api/support/wechat/push``).

``GET`` is WeChat's URL verification; ``POST`` delivers messages in XML or JSON, plaintext,
compatible or safe mode. Both are raw routes (the body is WeChat's XML or JSON and the answers
are text), documented in the OpenAPI document with their query.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal, TypeVar

import msgspec
from aiohttp import web
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import field_error
from livecommerce.errors import Unauthorized, ValidationError
from livecommerce.support import inbox
from livecommerce.support.context import SupportContext
from livecommerce.support.crypto import CryptoError, signature_ok
from livecommerce.support.push import PushFormatError, detect, fields, parse

log = logging.getLogger("livecommerce.support")

_Text = Annotated[str, Meta(max_length=128, pattern="^[A-Za-z0-9_.=+/-]*(?!\\n)$")]


class PushQuery(msgspec.Struct, kw_only=True):
    """The query WeChat adds to the push URL (parameters it may add later are ignored)."""

    signature: Annotated[
        _Text | None, Meta(description="SHA-1 of sorted token, timestamp, nonce")
    ] = None
    timestamp: _Text = ""
    nonce: _Text = ""
    openid: _Text | None = None
    encrypt_type: Annotated[
        Literal["aes", "raw"] | None, Meta(description="aes = safe or compatible mode")
    ] = None
    msg_signature: Annotated[
        _Text | None, Meta(description="SHA-1 of sorted token, timestamp, nonce, Encrypt")
    ] = None


class VerifyQuery(PushQuery, kw_only=True):
    """URL verification: the signature plus the ``echostr`` to echo."""

    echostr: Annotated[
        str, Meta(min_length=1, max_length=256, pattern="^[A-Za-z0-9_.=+/-]+(?!\\n)$")
    ]


Q = TypeVar("Q", bound=PushQuery)


def _query(request: web.Request, model: type[Q]) -> Q:
    """The query as ``model``: WeChat's parameters typed, any others ignored (WeChat adds
    parameters over time; refusing them would stop the messages).

    Raises:
        ValidationError: a known parameter breaks the model (400 naming it).
    """
    known = set(model.__struct_fields__)
    values: dict[str, str] = {}
    for k, v in request.query.items():
        if k in known and v != "" and k not in values:
            if "\x00" in v:
                raise ValidationError(k, "must not contain NUL characters")
            values[k] = v
    try:
        return msgspec.convert(values, model, strict=False)
    except msgspec.ValidationError as exc:
        raise field_error(exc, "query") from None


def _ctx(request: web.Request) -> SupportContext:
    return request.app[keys.SUPPORT]


async def verify(request: web.Request) -> web.Response:
    """WeChat's URL verification: echo `echostr` as plain text when the signature is right.

    401 for a missing or wrong signature (nothing echoed)."""
    q = _query(request, VerifyQuery)
    ctx = _ctx(request)
    if (
        not ctx.token
        or not q.signature
        or not signature_ok(q.signature, ctx.token, q.timestamp, q.nonce)
    ):
        raise Unauthorized("bad signature")
    return web.Response(text=q.echostr, content_type="text/plain")


async def receive(request: web.Request) -> web.Response:
    """Receive a pushed message: stored once, answered `success`, processed after the answer.

    XML or JSON; plaintext (`signature`), compatible or safe mode (`encrypt_type=aes`,
    `msg_signature` over the `Encrypt` field, AES-256-CBC; the previous EncodingAESKey is still
    accepted during a rotation). 401 and nothing stored for a missing or wrong signature, a
    ciphertext no key opens or one naming another app id; 400 for a body that is not a WeChat
    message. A message received before (WeChat's retries) is answered `success` again and not
    processed again."""
    q = _query(request, PushQuery)
    ctx = _ctx(request)
    if not ctx.token:
        raise Unauthorized("customer service is not configured (support.token)")
    if q.encrypt_type == "aes":
        if not q.msg_signature:
            raise Unauthorized("msg_signature is required in safe mode")
        raw = await request.read()
        envelope = _fields(raw)
        encrypted = envelope.get("Encrypt", "")
        if not encrypted or not signature_ok(
            q.msg_signature, ctx.token, q.timestamp, q.nonce, encrypted
        ):
            raise Unauthorized("bad msg_signature")
        if ctx.crypt is None:
            raise Unauthorized("safe mode is not configured (support.encoding_aes_key)")
        try:
            message, key_index = ctx.crypt.decrypt(encrypted)
        except CryptoError as exc:
            log.warning("push refused: Encrypt %s", exc)
            raise Unauthorized("Encrypt does not decrypt for this app") from None
        if key_index:
            log.info("push decrypted with the previous EncodingAESKey (rotation in progress)")
        values = _fields(message)
    else:
        if not q.signature or not signature_ok(q.signature, ctx.token, q.timestamp, q.nonce):
            raise Unauthorized("bad signature")
        values = _fields(await request.read())
    try:
        msg = parse(values)
    except PushFormatError as exc:
        raise ValidationError("body", str(exc)) from None
    inbox_id = await inbox.store(request.app[keys.PG_POOL], msg)
    if inbox_id is not None:
        ctx.worker.wake(inbox_id)
    return web.Response(text="success", content_type="text/plain")


def _fields(raw: bytes) -> dict[str, str]:
    try:
        return fields(raw, detect(raw))
    except PushFormatError as exc:
        raise ValidationError("body", str(exc)) from None
