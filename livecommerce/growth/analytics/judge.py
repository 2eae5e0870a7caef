"""The judgement of client events into stored rows (HTTP batches and socket ``track`` frames).

Each event is judged alone, so one bad event never costs the others (docs/api.md "Analytics
events"). The common case is one typed msgspec pass over the whole body (:func:`parse_fast`);
a body with a malformed event is judged event by event, and an event that fails the typed
decode field by field (:func:`parse_events`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
import orjson
from asyncpg.pgproto.pgproto import UUID as PgUUID
from msgspec import Meta

from livecommerce.growth.analytics.events import (
    CLIENT_TYPES,
    CUSTOM,
    MAX_ID,
    MAX_PAGE,
    MAX_PROPS_KEYS,
    MAX_VARIANTS,
    Limits,
    Rejection,
    Row,
    corrected_time,
    ms_to_dt,
)

_Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
_Short = Annotated[str, Meta(max_length=64, pattern=r"^[^\x00]*$")]


class EventIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One client event (see the module docstring)."""

    id: str
    type: Annotated[str, Meta(min_length=1, max_length=64)]
    ts: Annotated[int, Meta(ge=0, le=2**53)] | None = None
    page: Annotated[str, Meta(max_length=MAX_PAGE, pattern=r"^[^\x00]*$")] | None = None
    room_id: _Id | None = None
    goods_id: _Id | None = None
    push_seq: Annotated[int, Meta(ge=0, le=MAX_ID)] | None = None
    variants: Annotated[dict[_Short, _Short], Meta(max_length=MAX_VARIANTS)] | None = None
    props: Annotated[dict[_Short, Any], Meta(max_length=MAX_PROPS_KEYS)] | None = None


_Key = Annotated[str, Meta(max_length=64)]


class FastEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    """:class:`EventIn` for the fast path: no NUL pattern on the texts (a regex per string
    doubled the decode; :func:`parse_fast` refuses a body holding the JSON escape of NUL before
    decoding, and the slow path judges it); the id is parsed by :func:`fast_uuid`.
    ``gc=False``: decoded JSON cannot form a reference cycle, so the collector never tracks it.
    """

    id: Annotated[str, Meta(max_length=36)]
    type: Annotated[str, Meta(min_length=1, max_length=64)]
    ts: Annotated[int, Meta(ge=0, le=2**53)] | None = None
    page: Annotated[str, Meta(max_length=MAX_PAGE)] | None = None
    room_id: _Id | None = None
    goods_id: _Id | None = None
    push_seq: Annotated[int, Meta(ge=0, le=MAX_ID)] | None = None
    variants: Annotated[dict[_Key, _Key], Meta(max_length=MAX_VARIANTS)] | None = None
    props: Annotated[dict[_Key, Any], Meta(max_length=MAX_PROPS_KEYS)] | None = None


class FastBatch(msgspec.Struct, kw_only=True, gc=False):
    """A whole ``POST /api/events`` body, or a socket ``track`` frame (its other fields are
    ignored here), when every event is well-formed (the common case)."""

    events: list[FastEvent]
    sent_at: int | None = None


class _RawBatch(msgspec.Struct, kw_only=True, gc=False):
    """A batch whose events are kept undecoded (one pass that only finds each event's span)."""

    events: list[msgspec.Raw]


class _FrameEvents(msgspec.Struct, gc=False):
    """A socket ``track`` frame's ``events``, kept whole: named twice, the last is read, as
    orjson (the general path) and the track head read it (a typed list would meet the first)."""

    events: msgspec.Raw


_FAST = msgspec.json.Decoder(FastBatch)
_ONE = msgspec.json.Decoder(FastEvent)
_RAWS = msgspec.json.Decoder(_RawBatch)
_FRAME_EVENTS = msgspec.json.Decoder(_FrameEvents)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


def fast_uuid(text: str) -> uuid.UUID | None:
    """``text`` as a UUID in the forms msgspec accepts (36 characters with the dashes at 8, 13,
    18 and 23, or 32 hex digits; any case), else None. The value is asyncpg's own UUID (a
    ``uuid.UUID`` whose bytes COPY encodes in C, and parsed in C): about 0.6 µs an event less
    than ``uuid.UUID`` (bench/README.md, "Analytics ingestion")."""
    if len(text) != 32 and text[8:24:5] != "----":
        return None
    try:
        parsed: uuid.UUID = PgUUID(text)
    except ValueError:
        return None
    return parsed


@dataclass(frozen=True, slots=True)
class _Ctx:
    actor: str
    user_id: int | None
    received_ms: int
    received: datetime
    offset_ms: int
    limits: Limits


def _judge_fast(index: int, ev: FastEvent, ctx: _Ctx) -> Row | Rejection:
    """:func:`_judge` for an event of the typed decode (its id still text; the other forms
    ``uuid.UUID`` reads, as the field-by-field path does, are read by it)."""
    text = ev.id
    event_id = fast_uuid(text)
    if event_id is not None:  # the variant from the text: UUID.int costs asyncpg's UUID 0.3 µs
        rfc = text[19 if len(text) == 36 else 16] in _RFC_VARIANT_DIGITS
    else:
        try:
            event_id = uuid.UUID(text)
        except ValueError:
            return Rejection(index, "bad_uuid", "id must be a UUID", text)
        rfc = _rfc_9562(event_id)
    if not rfc:
        return _not_rfc_9562(index, event_id)
    return _judge(index, event_id, ev, ctx)


# A client id must have RFC 9562's variant (10x: the top bits of byte 8, the hex digit at 16 of
# the bare form); server event ids have 111 (server_event_id).
_RFC_VARIANT_DIGITS = frozenset("89abAB")


def _rfc_9562(event_id: uuid.UUID) -> bool:
    return (event_id.int >> 62) & 0b11 == 0b10


def _not_rfc_9562(index: int, event_id: uuid.UUID) -> Rejection:
    return Rejection(index, "bad_uuid", "id must be an RFC 9562 UUID", str(event_id))


def _judge(index: int, event_id: uuid.UUID, ev: EventIn | FastEvent, ctx: _Ctx) -> Row | Rejection:
    """The row of a well-formed event whose id is an RFC 9562 UUID, or why it is refused
    (type, props size)."""
    if ev.type not in CLIENT_TYPES and not CUSTOM.match(ev.type):
        return Rejection(index, "unknown_type", f"unknown event type {ev.type!r}", str(event_id))
    props = None
    limits = ctx.limits
    if ev.props is not None:
        try:
            encoded = orjson.dumps(ev.props)  # UTF-8: the limit is in bytes, not characters
        except orjson.JSONEncodeError as exc:  # an integer past 64 bits, nested too deep
            return Rejection(index, "invalid", f"props: {exc}", str(event_id))
        if len(encoded) > limits.max_props_bytes or b"\\u0000" in encoded:
            return Rejection(
                index, "too_large", f"props over {limits.max_props_bytes} bytes", str(event_id)
            )
        props = encoded.decode()
    at_ms, clamped = corrected_time(ev.ts, ctx.received_ms, ctx.offset_ms, limits)
    return (
        event_id, ev.type, ms_to_dt(at_ms), ctx.received, "client", clamped, ctx.actor,
        ctx.user_id, ev.room_id, ev.goods_id, ev.push_seq, None, None, ev.page,
        orjson.dumps(ev.variants).decode() if ev.variants else None, props,
    )  # fmt: skip


def _collect(
    judged: list[Row | Rejection],
) -> tuple[list[Row], list[Rejection], int]:
    rows = [r for r in judged if type(r) is tuple]
    rejected = [r for r in judged if type(r) is Rejection]
    return rows, rejected, sum(1 for r in rows if r[5])


class _IdOnly(msgspec.Struct, gc=False):
    """An event's ``id`` alone (its other fields skipped unread)."""

    id: Any = None


_ID_ONLY = msgspec.json.Decoder(_IdOnly)


def _unreadable(index: int, exc: orjson.JSONDecodeError, data: Any) -> Rejection:
    """An event msgspec's typed decode refused and orjson cannot read either (a number out of
    a double's range such as ``1e400``): ``invalid``, that event alone, with its ``id`` when it
    has a string one (read with the rest of the event skipped)."""
    try:
        raw_id = _ID_ONLY.decode(data).id
    except (msgspec.DecodeError, RecursionError):
        raw_id = None
    sid = raw_id if isinstance(raw_id, str) else None
    return Rejection(index, "invalid", f"not readable: {exc.msg}", sid)


def _judge_fields(index: int, item: Any, ctx: _Ctx) -> Row | Rejection:
    """One event that failed the typed decode (or came decoded): checked field by field."""
    raw_id = item.get("id") if isinstance(item, dict) else None
    sid = raw_id if isinstance(raw_id, str) else None
    try:
        ev = msgspec.convert(item, EventIn)
    except msgspec.ValidationError as exc:
        return Rejection(index, "invalid", str(exc), sid)
    try:
        event_id = uuid.UUID(ev.id)
    except ValueError:
        return Rejection(index, "bad_uuid", "id must be a UUID", sid)
    if not _rfc_9562(event_id):
        return _not_rfc_9562(index, event_id)
    return _judge(index, event_id, ev, ctx)


class UnreadableEvents(ValueError):
    """A socket ``track`` frame's ``events`` cannot be read as a list (answered ``invalid``)."""


def frame_events(raw: bytes) -> list[Any]:
    """The ``events`` of a JSON object ``raw`` (a socket ``track`` frame read without them),
    each undecoded (``msgspec.Raw``) for :func:`parse_events`. Raises UnreadableEvents when
    they cannot be read."""
    try:
        return _RAW_LIST.decode(_FRAME_EVENTS.decode(raw).events)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UnreadableEvents(f"events cannot be read: {exc}") from None


def parse_events(
    raw: list[Any],
    *,
    actor: str,
    user_id: int | None,
    received_ms: int,
    offset_ms: int,
    limits: Limits,
    max_events: int,
) -> tuple[list[Row], list[Rejection], int]:
    """Validate a batch: (rows to store, rejections, how many were clamped).

    Each event is judged alone, so one bad event never costs the others. An HTTP batch's
    events come undecoded (``msgspec.Raw``): each gets the typed decode of the fast path first
    and only one that fails it is looked at field by field."""
    ctx = _Ctx(actor, user_id, received_ms, ms_to_dt(received_ms), offset_ms, limits)
    judged: list[Row | Rejection] = []
    for index, item in enumerate(raw):
        if isinstance(item, msgspec.Raw):  # an HTTP batch keeps each event undecoded
            data = bytes(memoryview(item))
            if index < max_events and b"\\u0000" not in data:
                try:
                    fast = _ONE.decode(data)
                except (msgspec.DecodeError, RecursionError):  # invalid, or a string not UTF-8
                    pass
                else:
                    judged.append(_judge_fast(index, fast, ctx))
                    continue
            try:
                item = orjson.loads(data)
            except orjson.JSONDecodeError as exc:  # valid JSON, but e.g. a number past a double
                judged.append(_unreadable(index, exc, data))
                continue
        if index >= max_events:
            raw_id = item.get("id") if isinstance(item, dict) else None
            sid = raw_id if isinstance(raw_id, str) else None
            judged.append(Rejection(index, "over_batch_limit", f"at most {max_events} events", sid))
            continue
        judged.append(_judge_fields(index, item, ctx))
    return _collect(judged)


def parse_fast(
    raw: bytes,
    *,
    actor: str,
    user_id: int | None,
    received_ms: int,
    offset_ms: int,
    limits: Limits,
    max_events: int,
) -> tuple[list[Row], list[Rejection], int] | None:
    """:func:`parse_events` for a raw JSON body in one typed msgspec pass, or None when some
    event is malformed (then judge them one by one with :func:`parse_events`)."""
    if b"\\u0000" in raw:  # a NUL somewhere (or the text \\u0000): judge one by one
        return None
    try:
        batch = _FAST.decode(raw)
    except RecursionError:  # nested past msgspec's depth (orjson's is deeper): one by one
        return None
    except msgspec.DecodeError:  # ValidationError, or a string in an event that is not UTF-8
        # Some event is malformed (1 in 100 makes most batches of 100 so): each event gets
        # the typed decode alone, and only one that fails it the field-by-field judgement.
        try:
            events = _RAWS.decode(raw).events
        except (msgspec.DecodeError, RecursionError):  # a later event nested too deep
            return None
        if len(events) > max_events:
            return None
        ctx = _Ctx(actor, user_id, received_ms, ms_to_dt(received_ms), offset_ms, limits)
        return _collect(_judge_each(events, ctx))
    if len(batch.events) > max_events:
        return None
    ctx = _Ctx(actor, user_id, received_ms, ms_to_dt(received_ms), offset_ms, limits)
    return _collect([_judge_fast(i, ev, ctx) for i, ev in enumerate(batch.events)])


def _judge_each(events: list[msgspec.Raw], ctx: _Ctx) -> list[Row | Rejection]:
    """Each event of a body without NUL escapes: the typed decode, else field by field."""
    judged: list[Row | Rejection] = []
    decode = _ONE.decode
    for index, item in enumerate(events):
        try:
            fast = decode(item)
        except (msgspec.DecodeError, RecursionError):  # invalid, or a string not UTF-8
            try:
                loaded = orjson.loads(memoryview(item))
            except orjson.JSONDecodeError as exc:  # valid JSON, but e.g. a number past a double
                judged.append(_unreadable(index, exc, item))
                continue
            judged.append(_judge_fields(index, loaded, ctx))
        else:
            judged.append(_judge_fast(index, fast, ctx))
    return judged
