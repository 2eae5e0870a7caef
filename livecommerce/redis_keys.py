"""Every Redis key name, channel and TTL in one place.

A room's keys share the hash tag ``{room:ID}`` so that the Lua scripts touching them together
stay valid on Redis Cluster. What lives here is fast and rebuildable: sequences, history,
presence, counters. PostgreSQL stays the source of truth (see docs/architecture in README).
"""

from __future__ import annotations

PREFIX = "lc:"
ROOM_CHANNEL_PATTERN = "lc:room:*"
# How long a publish idempotency key is remembered.
PUBLISH_IDEMPOTENCY_TTL_SECONDS = 24 * 3600


def room_tag(room_id: int) -> str:
    return f"{{room:{room_id}}}"


def room_seq(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:seq"


def room_history(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:hist"


def room_state(room_id: int) -> str:
    """Hash: room (JSON info), epoch, bubble (current goods_push frame), viewers, likes."""
    return f"{PREFIX}{room_tag(room_id)}:state"


def room_presence(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:presence"


def room_tick_lock(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:tick"


def room_pending_likes(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:likes"


def room_publish_idem(room_id: int, key: str) -> str:
    return f"{PREFIX}{room_tag(room_id)}:idem:{key}"


def room_channel(room_id: int) -> str:
    return f"lc:room:{room_id}"


def room_id_from_channel(channel: bytes) -> int | None:
    try:
        return int(channel.rsplit(b":", 1)[1])
    except (IndexError, ValueError):
        return None
