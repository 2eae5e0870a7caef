"""Ingestion shared by both ways in (HTTP batch, socket ``track`` frame): validate, write.

``ingest`` takes a decoded batch and the caller's identity and answers the counts and the
per-event rejections only once the accepted events are committed (writer.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from livecommerce.config import AnalyticsConfig
from livecommerce.growth.analytics.events import MAX_BATCH, Limits, Rejection, actor_of
from livecommerce.growth.analytics.judge import (
    UnreadableEvents,
    frame_events,
    parse_events,
    parse_fast,
)
from livecommerce.growth.analytics.writer import Writer


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a batch: ``accepted`` valid events, of which ``stored`` were new and
    ``duplicates`` stored before; ``clamped`` had their time clamped; ``rejected`` per event."""

    accepted: int
    stored: int
    duplicates: int
    clamped: int
    rejected: list[Rejection]
    offset_ms: int


def limits_of(cfg: AnalyticsConfig) -> Limits:
    return Limits(cfg.max_props_bytes, cfg.max_future_seconds * 1000, cfg.max_past_seconds * 1000)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def ingest(
    writer: Writer,
    cfg: AnalyticsConfig,
    events: list[Any] | None,
    *,
    kind: str,
    subject: str,
    offset_ms: int,
    received_ms: int | None = None,
    raw: bytes | None = None,
) -> Outcome:
    """Validate ``events`` for the token ``kind``/``subject`` and store the valid ones.

    ``offset_ms`` is the client's clock error (server time minus client time), added to every
    client time. ``raw``: the HTTP body or socket frame ``events`` came from, for the one-pass
    typed decode (when every event is well-formed); ``events`` None: read from ``raw`` only if
    that pass fails. Raises what :meth:`Writer.write` raises (BufferFull, WriterClosed,
    PartitionUnavailable, backend); UnreadableEvents when ``events`` is None and ``raw``'s
    cannot be read, or they are more than ``MAX_BATCH``."""
    received = now_ms() if received_ms is None else received_ms
    actor, user_id = actor_of(kind, subject)
    args: dict[str, Any] = {
        "actor": actor,
        "user_id": user_id,
        "received_ms": received,
        "offset_ms": offset_ms,
        "limits": limits_of(cfg),
        "max_events": cfg.max_batch_events,
    }
    parsed = parse_fast(raw, **args) if raw is not None else None
    if parsed is None:
        if events is None:
            events = frame_events(raw or b"")
        if len(events) > MAX_BATCH:  # a track frame (a body past it is a 400 already)
            raise UnreadableEvents(f"events: at most {MAX_BATCH} in one frame")
        parsed = parse_events(events, **args)
    rows, rejected, clamped = parsed
    stored = await writer.write(rows)
    return Outcome(len(rows), stored, len(rows) - stored, clamped, rejected, offset_ms)


def skew_ms(sent_at_ms: int | None, received_ms: int, bound_ms: int) -> int:
    """Server receive time minus the client's ``sent_at`` (0 without one), within ±``bound_ms``.

    Network latency is part of it (a few hundred ms at worst): small against clock errors."""
    if sent_at_ms is None:
        return 0
    return max(-bound_ms, min(bound_ms, received_ms - sent_at_ms))
