"""Comments held for the host (``held_comments``): WeChat said ``review``, or the comment could
not be checked and the room's policy is ``hold``. No aiohttp here.

The host approves (the comment is published to the room, once) or rejects each. Approval
publishes with the idempotency key ``held:<id>`` while the row is locked and marks it approved
in the same transaction: a failed publish leaves it held (503, approve again), a lost commit
leaves it held too and the next approval's publish is the same one (deduplicated by Redis).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound
from livecommerce.realtime.broker import Broker
from livecommerce.rooms.service import owned_room

MAX_LISTED = 200


@dataclass(frozen=True, slots=True)
class Held:
    id: int
    user: dict[str, str]
    text: str
    reason: str
    status: str
    created_at: datetime
    seq: int | None = None


def comment_frame(user: dict[str, str], text: str) -> dict[str, Any]:
    """The room frame of a published comment (docs/protocol.md ``comment``)."""
    return {"type": "comment", "user": user, "text": text}


def _user(author: str) -> dict[str, str]:
    kind, _, author_id = author.partition(":")
    return {"kind": kind, "id": author_id}


def _held(row: asyncpg.Record) -> Held:
    return Held(
        row["id"], _user(row["author"]), row["text"], row["reason"], row["status"],
        row["created_at"], row["published_seq"],
    )  # fmt: skip


async def hold(
    pool: asyncpg.Pool, room_id: int, user: dict[str, str], text: str, reason: str
) -> int:
    """Keep a comment for the host's decision; its id. ``reason``: ``review`` | ``unchecked``."""
    held_id: int = await pool.fetchval(
        """INSERT INTO held_comments (room_id, author, text, reason)
           VALUES ($1, $2, $3, $4) RETURNING id""",
        room_id,
        f"{user['kind']}:{user['id']}",
        text,
        reason,
    )
    return held_id


async def list_held(pool: asyncpg.Pool, host_id: int, room_id: int) -> list[Held]:
    """The comments waiting in the host's room, oldest first (at most :data:`MAX_LISTED`)."""
    async with pool.acquire() as conn:
        await owned_room(conn, host_id, room_id)
        rows = await conn.fetch(
            """SELECT * FROM held_comments WHERE room_id = $1 AND status = 'held'
               ORDER BY id LIMIT $2""",
            room_id,
            MAX_LISTED,
        )
    return [_held(r) for r in rows]


async def decide(
    pool: asyncpg.Pool, broker: Broker, host_id: int, room_id: int, held_id: int, approve: bool
) -> Held:
    """Approve (publish) or reject a held comment of the host's room.

    Raises:
        NotFound: another host's room (``room_not_found``), no such held comment in the room
            (``held_comment_not_found``).
        Conflict: it was decided already (``already_decided``).
    """
    async with pool.acquire() as conn, conn.transaction():
        await owned_room(conn, host_id, room_id)
        row = await conn.fetchrow(
            "SELECT * FROM held_comments WHERE id = $1 AND room_id = $2 FOR UPDATE",
            held_id,
            room_id,
        )
        if row is None:
            raise NotFound("no such held comment", code="held_comment_not_found")
        if row["status"] != "held":
            raise Conflict(f"this comment was {row['status']} already", code="already_decided")
        seq = None
        if approve:
            frame = comment_frame(_user(row["author"]), row["text"])
            seq = (await broker.publish(room_id, frame, idempotency_key=f"held:{held_id}")).seq
        row = await conn.fetchrow(
            """UPDATE held_comments SET status = $2, decided_at = now(), published_seq = $3
               WHERE id = $1 RETURNING *""",
            held_id,
            "approved" if approve else "rejected",
            seq,
        )
    return _held(row)
