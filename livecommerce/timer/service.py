"""Scheduled goods pushes in PostgreSQL (the durable record), mirrored onto the Redis wheel.

Every change commits in PostgreSQL first and then updates the wheel. A wheel entry names
``(id, version)``; the dispatcher fires it only if that row is still ``pending`` at that version
(checked under a row lock), so a cancel or reschedule that committed before the due time can
never let the old time fire, even if removing the old wheel entry failed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound, ValidationError
from livecommerce.growth.experiments import bubble_push
from livecommerce.rooms.service import owned_room
from livecommerce.timer.wheel import Wheel, member

COLUMNS = (
    "id, room_id, goods_id, show_seconds, due_at, offset_ms, idempotency_key, status, version,"
    " fired_at, lateness_ms, late, publish_seq, skip_reason, created_at, experiment_id, creatives"
)

S_COLUMNS = ", ".join("s." + c.strip() for c in COLUMNS.split(","))
# An offset schedule's due time from its room's actual start (SQL, aliases s and r).
RESOLVED = "r.started_at + s.offset_ms * interval '1 millisecond'"


def to_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "room_id": row["room_id"],
        "goods_id": row["goods_id"],
        "show_seconds": row["show_seconds"],
        "due_at": _iso(row["due_at"]),
        "offset_seconds": row["offset_ms"] / 1000 if row["offset_ms"] is not None else None,
        "idempotency_key": row["idempotency_key"],
        "status": row["status"],
        "version": row["version"],
        "fired_at": _iso(row["fired_at"]),
        "lateness_ms": row["lateness_ms"],
        "late": row["late"],
        "publish_seq": row["publish_seq"],
        "skip_reason": row["skip_reason"],
        "experiment_id": row["experiment_id"],
        "creatives": row["creatives"],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def due_ms(row: asyncpg.Record) -> int:
    return int(row["due_at"].timestamp() * 1000)


async def _resolve_due(
    conn: asyncpg.Connection, room: asyncpg.Record, at: datetime | None, offset_ms: int | None
) -> datetime | None:
    """The absolute due time for ``at`` or an offset (None: waits for the room to start)."""
    now = await conn.fetchval("SELECT now()")
    if room["state"] == "ended":
        raise Conflict("the room has ended", code="room_ended")
    if at is not None:
        if at <= now:
            raise ValidationError("at", "is in the past")
        return at
    assert offset_ms is not None
    if room["started_at"] is not None:
        due: datetime = room["started_at"] + timedelta(milliseconds=offset_ms)
        if due <= now:
            raise ValidationError("offset_seconds", "start + offset is in the past")
        return due
    if room["planned_start_at"] is None:
        raise ValidationError("offset_seconds", "the room has no start to offset from")
    return None


async def create(
    pool: asyncpg.Pool,
    wheel: Wheel,
    host_id: int,
    room_id: int,
    *,
    goods_id: int,
    show_seconds: int,
    at: datetime | None,
    offset_ms: int | None,
    idempotency_key: str,
    experiment_id: int | None = None,
    creatives: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A pending schedule (on the wheel once it has a due time).

    With ``experiment_id`` and ``creatives`` (``bubble_push.creatives_of``) the push A/B tests
    its creative: the experiment must be the host's (400 ``experiment_id``), a draft or running
    (409 ``experiment_not_running``), with one creative per variant (400 ``variants``).
    """
    async with pool.acquire() as conn, conn.transaction():
        room = await owned_room(conn, host_id, room_id)
        # The host's own goods only (a link to another host's goods is ignored); a draft may
        # be scheduled: it is skipped (goods_gone) unless on sale when it falls due.
        attached = await conn.fetchval(
            """SELECT 1 FROM room_goods rg JOIN goods g ON g.id = rg.goods_id
               WHERE rg.room_id = $1 AND rg.goods_id = $2 AND g.host_id = $3""",
            room_id,
            goods_id,
            host_id,
        )
        if not attached:
            raise NotFound("goods is not attached to this room", code="goods_not_in_room")
        due = await _resolve_due(conn, room, at, offset_ms)
        ordered = None
        if experiment_id is not None:
            _exp, ordered = await bubble_push.resolve(
                conn, host_id, experiment_id, creatives or [], allow_draft=True
            )
        try:
            row = await conn.fetchrow(
                f"""INSERT INTO live_schedules (room_id, goods_id, show_seconds, due_at,
                       offset_ms, idempotency_key, experiment_id, creatives)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}""",
                room_id,
                goods_id,
                show_seconds,
                due,
                offset_ms,
                idempotency_key,
                experiment_id,
                ordered,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "a schedule with this idempotency_key exists for the room",
                code="duplicate_schedule",
            ) from None
    if row["due_at"] is not None:
        await wheel.add([(member(row["id"], row["version"]), due_ms(row))])
    return to_json(row)


async def list_for_room(pool: asyncpg.Pool, host_id: int, room_id: int) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        await owned_room(conn, host_id, room_id)
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM live_schedules WHERE room_id = $1"
            " ORDER BY due_at NULLS LAST, offset_ms, id",
            room_id,
        )
    return [to_json(r) for r in rows]


async def _pending_locked(
    conn: asyncpg.Connection, host_id: int, room_id: int, schedule_id: int
) -> tuple[asyncpg.Record, asyncpg.Record]:
    room = await owned_room(conn, host_id, room_id)
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM live_schedules WHERE id = $1 AND room_id = $2 FOR UPDATE",
        schedule_id,
        room_id,
    )
    if row is None:
        raise NotFound("no such schedule", code="schedule_not_found")
    if row["status"] != "pending":
        raise Conflict(f"the schedule is already {row['status']}", code=f"already_{row['status']}")
    return room, row


async def reschedule(
    pool: asyncpg.Pool,
    wheel: Wheel,
    host_id: int,
    room_id: int,
    schedule_id: int,
    *,
    at: datetime | None,
    offset_ms: int | None,
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        room, old = await _pending_locked(conn, host_id, room_id, schedule_id)
        due = await _resolve_due(conn, room, at, offset_ms)
        row = await conn.fetchrow(
            f"""UPDATE live_schedules SET due_at = $2, offset_ms = $3, version = version + 1,
                       updated_at = now()
                WHERE id = $1 RETURNING {COLUMNS}""",
            schedule_id,
            due,
            offset_ms,
        )
    await wheel.remove([member(old["id"], old["version"])])
    if row["due_at"] is not None:
        await wheel.add([(member(row["id"], row["version"]), due_ms(row))])
    return to_json(row)


async def cancel(
    pool: asyncpg.Pool, wheel: Wheel, host_id: int, room_id: int, schedule_id: int
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        _room, old = await _pending_locked(conn, host_id, room_id, schedule_id)
        row = await conn.fetchrow(
            f"""UPDATE live_schedules SET status = 'cancelled', updated_at = now()
                WHERE id = $1 RETURNING {COLUMNS}""",
            schedule_id,
        )
    await wheel.remove([member(old["id"], old["version"])])
    return to_json(row)


async def resolve_offsets(pool: asyncpg.Pool, wheel: Wheel, room_id: int) -> int:
    """(Re)resolve the room's pending offset schedules from its actual start; returns how many.

    Called when the room starts and when its start time is corrected. A resolved time already
    in the past fires at once (and is recorded as late, or skipped past max lateness).
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""WITH old AS (
                  SELECT s.id, s.version FROM live_schedules s
                  JOIN live_rooms r ON r.id = s.room_id
                  WHERE s.room_id = $1 AND s.status = 'pending' AND s.offset_ms IS NOT NULL
                    AND r.started_at IS NOT NULL
                    AND s.due_at IS DISTINCT FROM {RESOLVED}
                  FOR UPDATE OF s)
                UPDATE live_schedules s
                SET due_at = {RESOLVED},
                    version = s.version + 1, updated_at = now()
                FROM live_rooms r, old
                WHERE s.id = old.id AND r.id = s.room_id
                RETURNING {S_COLUMNS}, old.version AS old_version""",
            room_id,
        )
    await wheel.remove([member(r["id"], r["old_version"]) for r in rows])
    await wheel.add([(member(r["id"], r["version"]), due_ms(r)) for r in rows])
    return len(rows)


async def correct_start(
    pool: asyncpg.Pool, wheel: Wheel, host_id: int, room_id: int, started_at: datetime
) -> dict[str, Any]:
    """Correct a started room's actual start time; its offset schedules follow."""
    async with pool.acquire() as conn, conn.transaction():
        room = await owned_room(conn, host_id, room_id, lock=True)
        if room["state"] != "live":
            raise Conflict("only a live room's start can be corrected", code="room_not_live")
        if started_at > datetime.now(UTC) + timedelta(seconds=5):
            raise ValidationError("started_at", "is in the future")
        await conn.execute(
            "UPDATE live_rooms SET started_at = $2 WHERE id = $1", room_id, started_at
        )
    resolved = await resolve_offsets(pool, wheel, room_id)
    return {"room_id": room_id, "started_at": started_at.isoformat(), "rescheduled": resolved}


async def rooms_with_unresolved_offsets(pool: asyncpg.Pool) -> list[int]:
    """Started rooms whose pending offset schedules were not resolved (a node died between)."""
    rows = await pool.fetch(
        f"""SELECT DISTINCT s.room_id FROM live_schedules s JOIN live_rooms r ON r.id = s.room_id
           WHERE s.status = 'pending' AND s.offset_ms IS NOT NULL AND r.started_at IS NOT NULL
             AND s.due_at IS DISTINCT FROM {RESOLVED}"""
    )
    return [r["room_id"] for r in rows]


async def wheel_entries(conn: asyncpg.Connection | asyncpg.Pool) -> list[tuple[str, int]]:
    """Every pending schedule with a due time, as wheel entries (the rebuild source)."""
    rows = await conn.fetch(
        "SELECT id, version, due_at FROM live_schedules"
        " WHERE status = 'pending' AND due_at IS NOT NULL"
    )
    return [(member(r["id"], r["version"]), due_ms(r)) for r in rows]


async def wheel_entries_due_within(
    conn: asyncpg.Connection | asyncpg.Pool, seconds: float
) -> list[tuple[str, int]]:
    """Pending schedules due before now + ``seconds`` (overdue ones included), as wheel entries:
    what the periodic reconciliation checks the wheel against."""
    rows = await conn.fetch(
        "SELECT id, version, due_at FROM live_schedules WHERE status = 'pending'"
        " AND due_at <= now() + $1 * interval '1 second'",
        seconds,
    )
    return [(member(r["id"], r["version"]), due_ms(r)) for r in rows]
