"""Event types, the stored row's shape, times and ids (client and server events).

The one place event types are declared: :data:`CLIENT_TYPES` (what clients may send, plus
``custom:<name>``) and :data:`SERVER_TYPES` (recorded by the server itself). A client event is
a JSON object (docs/api.md "Analytics events"), judged into a row by :mod:`.judge`:

``{"id": uuid, "type": str, "ts": ms since epoch, "page"?: str, "room_id"?: int,
"goods_id"?: int, "push_seq"?: int, "variants"?: {str: str}, "props"?: {...}}``

Times are corrected for the client's clock skew (``offset_ms``: server time minus client time,
from the batch's ``sent_at`` or the socket's welcome frame) and clamped into
``[received - max_past, received + max_future]`` (flagged ``clamped``), never trusted as sent.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from livecommerce.auth.tokens import Kind

# Who records client events, over HTTP (`POST /api/events`) and the socket's `track` frame
# alike: users and anonymous viewers. Hosts (the console joins its room's socket) and
# customer-service agents are refused (403 / `error` `wrong_role`): they are not the audience.
ACTOR_KINDS: tuple[Kind, ...] = ("user", "viewer")

CLIENT_TYPES = frozenset(
    {
        "page_view",
        "goods_impression",
        "bubble_impression",
        "bubble_click",
        "goods_detail_view",
        "add_to_cart",
        "share",
        "order_created",
    }
)
SERVER_TYPES = frozenset(
    {
        "push_published",
        "order_placed",
        "order_paid",
        "order_refunded",
        "group_formed",
        "group_failed",
        "flash_sale_purchase",
        "room_minute",
    }
)
CUSTOM = re.compile(r"^custom:[a-z0-9_]{1,48}\Z")  # \Z: `$` would match before a final "\n"
MAX_ID = 2**63 - 1
MAX_PAGE = 256
MAX_VARIANTS = 20
MAX_PROPS_KEYS = 30
# Events in one batch or track frame: more is refused whole (config's max_batch_events rejects
# the excess of a batch under this ceiling per event).
MAX_BATCH = 1000

# The column order of analytics_events (and of the rows COPY writes).
COLUMNS = (
    "event_id", "type", "occurred_at", "received_at", "source", "clamped", "actor", "user_id",
    "room_id", "goods_id", "push_seq", "order_id", "amount_fen", "page", "variants", "props",
)  # fmt: skip
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why event ``index`` of a batch was not accepted (``id`` when it had a string one)."""

    index: int
    code: str  # bad_uuid | unknown_type | invalid | too_large | over_batch_limit
    message: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_props_bytes: int
    max_future_ms: int
    max_past_ms: int


def actor_of(kind: str, subject: str) -> tuple[str, int | None]:
    """(actor, user_id) from a token's kind and subject: identity never comes from a body."""
    return f"{kind}:{subject}", int(subject) if kind == "user" else None


def corrected_time(
    ts_ms: int | None, received_ms: int, offset_ms: int, limits: Limits
) -> tuple[int, bool]:
    """(event time in ms, clamped?) for a client time ``ts_ms`` shifted by ``offset_ms``."""
    if ts_ms is None:
        return received_ms, False
    t = ts_ms + offset_ms
    if t > received_ms + limits.max_future_ms:
        return received_ms + limits.max_future_ms, True
    if t < received_ms - limits.max_past_ms:
        return received_ms - limits.max_past_ms, True
    return t, False


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLIS = tuple(timedelta(milliseconds=i) for i in range(1000))
# Whole seconds → their datetime (the events of a burst share a few seconds); cleared when full.
_SECONDS: dict[int, datetime] = {}
_SECONDS_MAX = 4096


def ms_to_dt(ms: int) -> datetime:
    """ms since the epoch → an aware UTC datetime (exact): the second's datetime (cached) plus
    the milliseconds' timedelta (one of 1,000 made once), about three times as fast as
    ``_EPOCH + timedelta(…)`` and four times ``datetime.fromtimestamp``."""
    second, milli = divmod(ms, 1000)
    base = _SECONDS.get(second)
    if base is None:
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        base = _SECONDS[second] = _EPOCH + timedelta(seconds=second)
    return base + _MILLIS[milli]


def server_row(
    type_: str,
    *,
    event_id: uuid.UUID | None = None,
    room_id: int | None = None,
    goods_id: int | None = None,
    push_seq: int | None = None,
    order_id: int | None = None,
    amount_fen: int | None = None,
    user_id: int | None = None,
    props: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Row:
    """A server-side event row (``type_`` in :data:`SERVER_TYPES`); ``event_id`` deterministic
    (uuid5 of what makes it unique) so a replayed server action is stored once too."""
    assert type_ in SERVER_TYPES, type_
    now = datetime.now(UTC)
    return (
        event_id or uuid.uuid4(), type_, at or now, now, "server", False,
        f"user:{user_id}" if user_id is not None else "server", user_id, room_id, goods_id,
        push_seq, order_id, amount_fen, None, None,
        orjson.dumps(props).decode() if props else None,
    )  # fmt: skip


NAMESPACE = uuid.UUID("5b0f6a52-9d1e-4c3e-9a55-8a1c0e6f1a16")


# The variant bits (the top three of byte 8): RFC 9562's 10x for client ids; 111, reserved
# for future use by the RFC, marks a server event id (migration 0026 does the same in SQL).
_VARIANT_SHIFT = 61
_SERVER_VARIANT = 0b111 << _VARIANT_SHIFT


def server_event_id(*parts: object) -> uuid.UUID:
    """A deterministic event id for a server event (the same action twice: the same id): uuid5
    of ``parts`` with the variant bits set to 111, which :func:`_judge` refuses in client ids
    (a client could otherwise send a coming server event's predictable id first)."""
    h = uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts)).int
    return uuid.UUID(int=(h & ~(0b111 << _VARIANT_SHIFT)) | _SERVER_VARIANT)
