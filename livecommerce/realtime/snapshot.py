"""The room snapshot a viewer starts from, and the ``welcome``/``resync`` frame built on it.

Used by the endpoint (a join, a ``resume``) and by the node (an in-band ``resync`` of the
viewers already connected when the room's stream was reset, docs/protocol.md "Epochs").
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import orjson

from livecommerce.realtime.broker import Broker, Snapshot
from livecommerce.rooms.service import get_room


class RoomNotFound(Exception):
    """Neither Redis nor PostgreSQL knows the room."""


async def load_snapshot(
    broker: Broker, pool: asyncpg.Pool, room_id: int, last_seq: int | None
) -> tuple[Snapshot, dict[str, Any]]:
    """(The room snapshot, the room's public info). The cached info is rebuilt from
    PostgreSQL when Redis lacks it (lost, or dropped with a new epoch).

    Raises:
        RoomNotFound: no such room.
        redis.exceptions.RedisError, OSError: a backend failed.
    """
    snap = await broker.snapshot(room_id, last_seq)
    if "room" not in snap.state:
        info = await get_room(pool, room_id)
        if info is None:
            raise RoomNotFound(room_id)
        await broker.set_room_info(room_id, info)
        snap = await broker.snapshot(room_id, last_seq)
    return snap, orjson.loads(snap.state["room"])


def snapshot_epoch(snap: Snapshot) -> str:
    return snap.state.get("epoch", b"").decode()


def longest_show(frame: dict[str, Any]) -> int:
    """How long a bubble frame shows (s): for an A/B-tested push, its longest variant."""
    shown: int = frame.get("show_seconds", 0)
    exp = frame.get("experiment")
    if isinstance(exp, dict):
        for c in exp.get("creatives") or ():
            shown = max(shown, c.get("show_seconds", 0))
    return shown


def welcome_body(kind: str, snap: Snapshot, room: dict[str, Any], resumed: bool) -> dict[str, Any]:
    """The ``welcome`` (``kind``) or ``resync`` frame for ``snap`` (docs/protocol.md)."""
    bubble = None
    raw = snap.state.get("bubble")
    if raw:
        frame = orjson.loads(raw)
        if frame["ts"] + longest_show(frame) * 1000 > time.time() * 1000:
            bubble = frame  # an A/B-tested one is narrowed per viewer (variants.py)
    return {
        "type": kind,
        "seq": snap.seq,
        "epoch": snapshot_epoch(snap),
        "room": room,
        "bubble": bubble,
        "viewers": int(snap.state.get("viewers", b"0")),
        "likes": int(snap.state.get("likes", b"0")),
        "resumed": resumed,
        "missed": len(snap.missed) if resumed else 0,
        # This node's clock (ms): clients measure their clock offset for `track` frames.
        "server_time": time.time_ns() // 1_000_000,
    }
