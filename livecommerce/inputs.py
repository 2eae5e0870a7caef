"""Parsing request bodies, query strings and path ids for every HTTP handler.

Every defect is a 400 naming the field (``error.field``); a malformed path id is a 404.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from livecommerce.errors import NotFound, ValidationError

MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def json_object(request: web.Request, allowed: Iterable[str]) -> dict[str, Any]:
    """The body as a JSON object with no keys outside ``allowed``."""
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError("body", "must be valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object")
    allowed_set = set(allowed)
    for key in data:
        if key not in allowed_set:
            raise ValidationError(str(key)[:64], "unknown field")
    return data


def path_id(request: web.Request, name: str = "id") -> int:
    """A positive bigint path segment; anything else names no resource (404)."""
    text = request.match_info.get(name, "")
    if not _DIGITS.match(text) or not 0 < int(text) <= MAX_ID:
        raise NotFound("no such resource")
    return int(text)


def integer(
    data: Mapping[str, Any],
    name: str,
    *,
    low: int,
    high: int,
    default: int | None = None,
    required: bool = True,
) -> int | None:
    value = data.get(name)
    if value is None:
        if required and default is None:
            raise ValidationError(name, "is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, "must be an integer")
    if not low <= value <= high:
        raise ValidationError(name, f"must be between {low} and {high}")
    return value


def required_int(data: Mapping[str, Any], name: str, *, low: int, high: int) -> int:
    value = integer(data, name, low=low, high=high)
    assert value is not None
    return value


def text(
    data: Mapping[str, Any],
    name: str,
    *,
    max_len: int,
    min_len: int = 0,
    default: str | None = None,
    choices: tuple[str, ...] | None = None,
    required: bool = False,
) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return default
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string")
    if "\x00" in value:
        raise ValidationError(name, "must not contain NUL characters")
    if not min_len <= len(value) <= max_len:
        raise ValidationError(name, f"length must be between {min_len} and {max_len}")
    if choices is not None and value not in choices:
        raise ValidationError(name, f"must be one of {', '.join(choices)}")
    return value


def required_text(data: Mapping[str, Any], name: str, *, max_len: int, min_len: int = 1) -> str:
    value = text(data, name, max_len=max_len, min_len=min_len, required=True)
    assert value is not None
    return value


def url_list(data: Mapping[str, Any], name: str, *, max_items: int) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > max_items:
        raise ValidationError(name, f"must be a list of at most {max_items} URLs")
    for item in value:
        if (
            not isinstance(item, str)
            or not 8 <= len(item) <= 500
            or not item.startswith(("https://", "http://"))
            or "\x00" in item
        ):
            raise ValidationError(name, "each item must be an http(s) URL of at most 500 chars")
    return list(value)


def id_list(data: Mapping[str, Any], name: str, *, max_items: int) -> list[int] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > max_items:
        raise ValidationError(name, f"must be a list of at most {max_items} ids")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= MAX_ID:
            raise ValidationError(name, "each item must be a positive integer id")
    return sorted(set(value))


def query_int(request: web.Request, name: str, *, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not _DIGITS.match(raw) or not low <= int(raw) <= high:
        raise ValidationError(name, f"must be an integer between {low} and {high}")
    return int(raw)


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if not _KEY.match(key):
        raise ValidationError(
            "Idempotency-Key", "header required: 1-64 characters of A-Z a-z 0-9 _ -"
        )
    return key
