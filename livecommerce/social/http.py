"""Request helpers shared by the social handlers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from livecommerce.auth.http import require_claims
from livecommerce.errors import ValidationError


def user_id(request: web.Request) -> int:
    uid = require_claims(request, "user").user_id
    assert uid is not None
    return uid


def host_id(request: web.Request) -> int:
    hid = require_claims(request, "host").host_id
    assert hid is not None
    return hid


def timestamp(data: Mapping[str, Any], name: str) -> datetime:
    """A required ISO 8601 timestamp with a UTC offset."""
    value = data.get(name)
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise ValidationError(name, "must be an ISO 8601 timestamp string with an offset")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(name, "must be an ISO 8601 timestamp") from None
    if at.tzinfo is None:
        raise ValidationError(name, "must include a time zone offset")
    if not 2000 <= at.year <= 2100:
        raise ValidationError(name, "must be between the years 2000 and 2100")
    return at
