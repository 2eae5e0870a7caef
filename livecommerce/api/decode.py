"""Request decoding for the typed contract: body, query string, path ids, Idempotency-Key.

Every defect is a :class:`~livecommerce.errors.ValidationError` (400) naming the field, taken
from msgspec's error path with list indices dropped; a malformed path id is a 404.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from livecommerce.errors import NotFound, ValidationError

MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"^[0-9]{1,19}(?!\n)$")
# The Idempotency-Key header (also its OpenAPI pattern); (?!\n): `$` also matches before a "\n".
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}(?!\n)$")
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"field `(?P<name>[^`]+)`")
_INDEX = re.compile(r"\[[^\]]*\]")

T = TypeVar("T")


def field_error(exc: msgspec.ValidationError, default: str) -> ValidationError:
    """Our 400 for a msgspec error: ``field`` is its path with list indices dropped
    (``images[3]`` -> ``images``; nested keys joined with dots), the message keeps the detail."""
    text = str(exc)
    path = ""
    at = _AT.search(text)
    if at:
        path = at.group("path")
        text = text[: at.start()]
    named = _NAMED.search(text)
    if named and ("unknown field" in text or "missing required field" in text):
        path = f"{path}.{named.group('name')}"
    clean = _INDEX.sub("", path).strip(".")
    name = clean[:64] or default
    where = path.lstrip(".") or default
    return ValidationError(
        name, text[:1].lower() + text[1:] if where == name else f"{where}: {text}"
    )


_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def decode_body(raw: bytes, model: type[T]) -> T:
    """The JSON body as ``model``; an empty body reads as ``{}``.

    Raises:
        ValidationError: malformed JSON, not an object or nested too deeply (field ``body``),
            or a field that breaks the model (field named).
    """
    decoder = _decoders.get(model)
    if decoder is None:
        decoder = _decoders[model] = msgspec.json.Decoder(model)
    if b"\\u0000" in raw:  # JSON can only carry NUL escaped; most bodies skip this
        _refuse_nul(raw)
    try:
        return decoder.decode(raw or b"{}")  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        # msgspec validates while it parses: `{"a": ` is refused for the unknown field before
        # the syntax error is reached. A body that is not JSON at all says so (error path only).
        _require_json(raw)
        if "got `float`" not in str(exc):
            raise field_error(exc, "body") from None
        error = exc
    except msgspec.DecodeError:
        raise ValidationError("body", "must be valid JSON") from None
    except RecursionError:  # nested deeper than the decoder's recursion can go
        raise ValidationError("body", "is nested too deeply") from None
    # JSON has one number type: 5.0 is the integer 5 (as JSON Schema says), 5.5 is not. Only
    # a body msgspec refused for a float pays for this second, untyped pass.
    try:
        return msgspec.convert(_integral(msgspec.json.decode(raw)), model)
    except msgspec.ValidationError:
        raise field_error(error, "body") from None


def _require_json(raw: bytes) -> None:
    """Raise ValidationError (field ``body``) when ``raw`` is not well-formed JSON."""
    try:
        msgspec.json.decode(raw or b"{}")
    except msgspec.DecodeError:
        raise ValidationError("body", "must be valid JSON") from None


def _refuse_nul(raw: bytes) -> None:
    """400 naming the first key or string holding a NUL character (no text may hold one)."""
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return  # the typed decode reports it
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            raise ValidationError(path or "body", "must not contain NUL characters")
        if isinstance(value, dict):
            for k, v in value.items():
                name = f"{path}.{k}" if path else k
                if "\x00" in k:
                    raise ValidationError(path or "body", "keys must not contain NUL characters")
                stack.append((name[:64], v))
        elif isinstance(value, list):
            stack.extend((path, v) for v in value)


def _integral(value: Any) -> Any:
    """``value`` with every float that is a whole number replaced by that int."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def convert(value: Any, model: type[T], name: str) -> T:
    """``value`` (already-decoded JSON, e.g. a part of a body checked later) as ``model``.

    Raises:
        ValidationError: naming ``name`` and the path under it (``resource.nonce``).
    """
    try:
        return msgspec.convert(value, model)
    except msgspec.ValidationError as exc:
        err = field_error(exc, "")
        field = f"{name}.{err.field}" if err.field else name
        raise ValidationError(field, err.message.split(": ", 1)[-1]) from None


def decode_query(request: web.Request, model: type[T]) -> T:
    """The query string as ``model`` (text converted to the field types; empty = absent).

    Raises:
        ValidationError: a parameter that breaks the model, or an unknown one (field named).
    """
    values: dict[str, str] = {}
    for k, v in request.query.items():
        if k in values:
            raise ValidationError(k[:64], "given more than once")
        if "\x00" in v or "\x00" in k:
            raise ValidationError(k[:64].replace("\x00", ""), "must not contain NUL characters")
        if v != "":
            values[k] = v
    try:
        result = msgspec.convert(values, model, strict=False)
    except msgspec.ValidationError as exc:
        raise field_error(exc, "query") from None
    for k in values:  # lax conversion reads "null" as None; a given parameter has a value
        if getattr(result, k) is None:
            raise ValidationError(k[:64], "must not be null (leave it out instead)")
    return result


def path_ids(request: web.Request, names: tuple[str, ...]) -> dict[str, int]:
    """Each path parameter as a positive bigint; anything else names no resource (404)."""
    ids: dict[str, int] = {}
    for name in names:
        text = request.match_info.get(name, "")
        if not _DIGITS.match(text) or not 0 < int(text) <= MAX_ID:
            raise NotFound("no such resource")
        ids[name] = int(text)
    return ids


def idempotency_key(request: web.Request) -> str:
    """The ``Idempotency-Key`` header: 1-64 of ``A-Z a-z 0-9 _ -`` (400 otherwise)."""
    key = request.headers.get("Idempotency-Key", "")
    if not IDEMPOTENCY_KEY.match(key):
        raise ValidationError(
            "Idempotency-Key", "header required: 1-64 characters of A-Z a-z 0-9 _ -"
        )
    return key
