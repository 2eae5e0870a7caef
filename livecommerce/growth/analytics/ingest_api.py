"""HTTP: ``POST /api/events`` — a batch of client events (the mini-program flushes every few s)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model
from livecommerce.errors import PayloadTooLarge, Unavailable
from livecommerce.growth.analytics import ingest as service
from livecommerce.growth.analytics.events import MAX_BATCH
from livecommerce.growth.analytics.writer import BufferFull, PartitionUnavailable, WriterClosed

# The static ceiling; ``analytics.max_batch_events`` (config) rejects the excess per event.
MAX_EVENTS = MAX_BATCH
MAX_SKEW_MS = 30 * 86400 * 1000


class EventBatch(Body):
    """A batch of client events; identity comes from the token, never from the body."""

    # Raw: each event is decoded on its own (one bad event must not cost the batch).
    events: Annotated[
        list[msgspec.Raw],
        Meta(
            max_length=MAX_EVENTS,
            description=(
                "Each: `{id: UUID, type, ts?: ms since epoch, page?, room_id?, goods_id?, "
                "push_seq?, variants?: {name: variant}, props?: {...}}`; judged one by one, "
                "anything else is rejected as `invalid` (docs/api.md, Analytics events)"
            ),
        ),
    ]
    sent_at: (
        Annotated[
            int,
            Meta(ge=0, le=2**53, description="Client clock when sent (ms): corrects `ts` skew"),
        ]
        | None
    ) = None


class EventRejection(Model):
    """Why one event of the batch was not accepted."""

    index: Annotated[int, Meta(description="Position in `events`")]
    code: Annotated[
        str,
        Meta(
            description="bad_uuid | unknown_type | invalid | too_large | over_batch_limit",
        ),
    ]
    message: str
    id: str | None = None


class Ingested(Model):
    """The batch's outcome, answered once its accepted events are committed."""

    accepted: Annotated[int, Meta(description="Valid events (stored now or before)")]
    stored: Annotated[int, Meta(description="Stored by this call")]
    duplicates: Annotated[int, Meta(description="Already stored (a retry): not stored again")]
    clamped: Annotated[int, Meta(description="Event times clamped (too far ahead/behind)")]
    offset_ms: Annotated[int, Meta(description="Clock correction applied (server − client)")]
    rejected: list[EventRejection]


class BufferFullError(Unavailable):
    code = "buffer_full"


async def track(call: Call[EventBatch, None]) -> Ingested:
    """Record a batch of analytics events.

    Each event is judged alone: bad ones come back in `rejected` and the rest are stored.
    The answer comes only after the accepted events are committed (a retry of an answered
    batch stores nothing twice: the same `id` is stored once). 413 when the body is over
    `analytics.max_batch_bytes`; 503 `buffer_full` (with Retry-After) when the writer is full."""
    app = call.app
    cfg = app[keys.SETTINGS].analytics
    raw = await call.request.read()  # already read (and bounded) by the contract
    if len(raw) > cfg.max_batch_bytes:
        raise PayloadTooLarge(f"a batch is at most {cfg.max_batch_bytes} bytes")
    assert call.claims is not None
    received = service.now_ms()
    offset = service.skew_ms(call.body.sent_at, received, MAX_SKEW_MS)
    try:
        out = await service.ingest(
            app[keys.ANALYTICS_WRITER],
            cfg,
            call.body.events,
            kind=call.claims.kind,
            subject=call.claims.subject,
            offset_ms=offset,
            received_ms=received,
            raw=raw,
        )
    except BufferFull:
        raise BufferFullError("too many events waiting to be written; retry later") from None
    except WriterClosed:
        raise Unavailable("this node is shutting down; retry") from None
    except PartitionUnavailable:
        raise Unavailable("these events' day cannot be stored right now; retry") from None
    return Ingested(
        accepted=out.accepted,
        stored=out.stored,
        duplicates=out.duplicates,
        clamped=out.clamped,
        offset_ms=out.offset_ms,
        rejected=[
            EventRejection(index=r.index, code=r.code, message=r.message, id=r.id)
            for r in out.rejected
        ],
    )
