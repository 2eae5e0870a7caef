"""Constrained field types shared by the request and response models of every capability.

Each is an ``Annotated`` type msgspec enforces when decoding and writes into the JSON Schema of
the OpenAPI document (``minimum``, ``maxLength``, ``pattern``, ``format`` ...).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from msgspec import Meta

from livecommerce.errors import ValidationError

MAX_ID = 2**63 - 1
MAX_PRICE_FEN = 10**10  # 100 million yuan, in fen
MAX_STOCK = 10**7

# No request text may hold a NUL character (PostgreSQL text cannot store it). The contract
# refuses a body with one before decoding it (api.contract.decode_body: 400 naming the field),
# cheaper than a regex per string; this Meta writes that rule into the field's JSON Schema.
NO_NUL = Meta(extra_json_schema={"pattern": "^[^\\u0000]*$"})
# What shows nothing: whitespace, and the invisible characters that are not whitespace (soft
# hyphen, Hangul fillers, Mongolian vowel separator, zero-width space/joiners and direction
# marks, word joiner and invisible operators, BOM, braille blank). The same in Python's re and
# in the JSON Schema's (ECMA) regex, where ``\s`` alone would differ (U+FEFF).
_BLANK = r"\s\u00ad\u115f\u1160\u180e\u200b-\u200f\u2060-\u2064\u2800\u3164\ufeff\uffa0"
# Not blank (at least one character that is none of ``_BLANK``) and no NUL, as one pattern: a
# second ``Meta`` (``NO_NUL``) would replace the first one's pattern in the JSON Schema.
NON_BLANK = rf"^[{_BLANK}]*[^\x00{_BLANK}][^\x00]*$"
# A scheme, then a host (no whitespace anywhere): what a browser or <live-player> can load.
_HOST_AND_REST = r"://[^\s/?#\x00]+[^\s\x00]*(?!\n)$"
HTTP_URL = r"^https?" + _HOST_AND_REST
# A live stream: http(s) (HTTP-FLV, HLS) or rtmp, what WeChat's <live-player> plays.
STREAM_URL = r"^(?:https?|rtmp)" + _HOST_AND_REST
# How far ahead a scheduled time may be (a typo such as year 9999 is a 400, not a schedule).
MAX_AHEAD_DAYS = 366

Id = Annotated[int, Meta(ge=1, le=MAX_ID, description="A positive bigint id")]
Fen = Annotated[int, Meta(ge=0, le=MAX_PRICE_FEN, description="Money in fen (1/100 CNY)")]
Stock = Annotated[int, Meta(ge=0, le=MAX_STOCK)]
ShowSeconds = Annotated[int, Meta(ge=1, le=3600, description="How long the bubble shows (s)")]
Url = Annotated[
    str,
    Meta(
        min_length=8,
        max_length=500,
        pattern=r"^https?://[^\x00]*$",
        description="An http(s) URL",
    ),
]
Cursor = Annotated[
    str, Meta(max_length=200, description="The `next_cursor` of the previous page (opaque)")
]
Time = Annotated[datetime, Meta(tz=True, description="RFC 3339 timestamp with an offset")]
NonBlankTitle = Annotated[str, Meta(min_length=1, max_length=200, pattern=NON_BLANK)]


def check_time(field: str, value: datetime) -> datetime:
    """``value`` (a decoded :data:`Time`) in UTC, for a model's ``__post_init__``.

    Raises:
        ValidationError: on ``field`` when the instant is outside the calendar in UTC (year 1
            at +14:00, year 9999 at -14:00): it cannot be stored or compared safely.
    """
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(field, "is out of range") from None


def check_ahead(field: str, value: datetime, days: int = MAX_AHEAD_DAYS) -> None:
    """Refuse a time more than ``days`` ahead of now, for a model's ``__post_init__``.

    Raises:
        ValidationError: on ``field``.
    """
    if value - datetime.now(UTC) > timedelta(days=days):
        raise ValidationError(field, f"is more than {days} days ahead")


def check_behind(field: str, value: datetime, days: int) -> None:
    """Refuse a time more than ``days`` before now, for a model's ``__post_init__``.

    Raises:
        ValidationError: on ``field``.
    """
    if datetime.now(UTC) - value > timedelta(days=days):
        raise ValidationError(field, f"is more than {days} day{'s' * (days != 1)} in the past")
