"""Opaque keyset cursors: ``base64url(json).base64url(hmac)[:16]``, bound to the query's filters.

A cursor holds the last id of a page and a digest of the filters it was made for; the HMAC
stops a client from crafting one, and reusing it with other filters is a 400, not a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import orjson

from livecommerce.errors import ValidationError

MAX_CURSOR_CHARS = 200


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, scope: str, payload: bytes) -> bytes:
    return hmac.new(f"cursor|{scope}|{secret}".encode(), payload, hashlib.sha256).digest()[:12]


def encode(secret: str, scope: str, last_id: int, filters: object) -> str:
    payload = orjson.dumps({"i": last_id, "f": filters})
    return f"{_b64(payload)}.{_b64(_mac(secret, scope, payload))}"


def decode(secret: str, scope: str, cursor: str | None, filters: object) -> int | None:
    """The last id a cursor stands for, None for no cursor (the first page).

    Raises:
        ValidationError: on ``cursor``: malformed, forged, or made for other filters.
    """
    if cursor is None or cursor == "":
        return None
    body, _, sig = cursor.partition(".")
    try:
        if len(cursor) > MAX_CURSOR_CHARS or not sig:
            raise ValueError
        payload = _unb64(body)
        if not hmac.compare_digest(_unb64(sig), _mac(secret, scope, payload)):
            raise ValueError
        data = orjson.loads(payload)
        last_id = data["i"]
        same_filters = data["f"] == orjson.loads(orjson.dumps(filters))
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise ValidationError("cursor", "invalid cursor") from None
    if not same_filters:
        raise ValidationError("cursor", "cursor was made for other filters")
    if isinstance(last_id, bool) or not isinstance(last_id, int) or last_id < 1:
        raise ValidationError("cursor", "invalid cursor")
    return last_id
