"""JSON in and out of aiohttp handlers (orjson), and small typed validators for request bodies."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from livecommerce.errors import AppError, NotFound, ValidationError


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 AppError saying what is wrong."""
    raw = await request.read()  # over client_max_size: aiohttp raises 413, mapped in errors.py
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AppError("body is not valid JSON", code="bad_json") from None
    if not isinstance(data, dict):
        raise AppError("body must be a JSON object", code="bad_json")
    return data


def get_str(
    body: dict[str, Any], name: str, *, required: bool = True, max_len: int = 200, default: str = ""
) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return default
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string")
    value = value.strip()
    if required and not value:
        raise ValidationError(name, "must not be empty")
    if len(value) > max_len:
        raise ValidationError(name, f"must be at most {max_len} characters")
    return value


def get_int(
    body: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    lo: int = 0,
    hi: int = 2**53,
    default: int | None = None,
) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(name, "must be an integer")
    if not lo <= value <= hi:
        raise ValidationError(name, f"must be between {lo} and {hi}")
    return value


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"no such {name.removesuffix('_id')}", code="not_found")
    return int(raw)
