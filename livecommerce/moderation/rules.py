"""A room's moderation rules: PostgreSQL is the record, Redis a copy for the comment path.

Rules: ``room_muted`` (only the room's own host may comment), ``blocked_words`` (a comment
containing one is refused to its author), ``unchecked_policy`` (``hold`` or ``show``: what
happens to a comment WeChat's content check could not judge), and the muted authors with an
optional end (``room_mutes``). No aiohttp here.

Every change runs in one PostgreSQL transaction that bumps ``room_moderation.version`` and,
before committing, writes the whole state to Redis (``lua/moderation_load.lua``, refused when
Redis already holds a newer version): a Redis failure rolls the change back (503, nothing
half-written). When the copy is missing (Redis restarted empty, flushed, or the 7-day TTL
passed) the comment path rebuilds it from PostgreSQL with the same script, so a rebuild racing a
change can never undo it. Mutes survive a Redis loss; expired ones are dropped at the next load.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from livecommerce import redis_keys as rk
from livecommerce.errors import NotFound
from livecommerce.rooms.service import owned_room

_LUA = Path(__file__).resolve().parent.parent / "lua"
LOAD_SCRIPT = (_LUA / "moderation_load.lua").read_text()
CHECK_SCRIPT = (_LUA / "moderation_check.lua").read_text()
MAX_WORDS = 200
MAX_MUTE_SECONDS = 30 * 86400


def normalize(text: str) -> str:
    """How comments and blocked words are compared: NFKC, then case-folded (``ＳＰＡＭ`` and
    ``Spam`` both match the word ``spam``)."""
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True, slots=True)
class Settings:
    """The room's rules as the host sees them."""

    room_muted: bool
    unchecked_policy: str
    blocked_words: list[str]
    version: int


@dataclass(frozen=True, slots=True)
class Mute:
    kind: str
    id: str
    muted_until: datetime | None
    created_at: datetime

    @property
    def user(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}


def author_key(kind: str, author_id: str) -> str:
    """``user:12`` — how a comment's author (its frame's ``user``) is named in a mute."""
    return f"{kind}:{author_id}"


async def _settings(conn: asyncpg.Connection, room_id: int) -> Settings:
    row = await conn.fetchrow(
        """SELECT room_muted, unchecked_policy, blocked_words, version
           FROM room_moderation WHERE room_id = $1""",
        room_id,
    )
    if row is None:
        return Settings(False, "show", [], 0)
    return Settings(
        row["room_muted"], row["unchecked_policy"], list(row["blocked_words"]), row["version"]
    )


async def _mutes(conn: asyncpg.Connection, room_id: int) -> list[Mute]:
    rows = await conn.fetch(
        """SELECT author, muted_until, created_at FROM room_mutes
           WHERE room_id = $1 AND (muted_until IS NULL OR muted_until > now())
           ORDER BY created_at, author""",
        room_id,
    )
    out = []
    for r in rows:
        kind, _, author_id = r["author"].partition(":")
        out.append(Mute(kind, author_id, r["muted_until"], r["created_at"]))
    return out


async def _write_copy(conn: asyncpg.Connection, redis: Redis, room_id: int, host_id: int) -> None:
    """Write the room's state (as this connection sees it) into Redis at its version."""
    s = await _settings(conn, room_id)
    args: list[Any] = [
        s.version, host_id, int(s.room_muted), s.unchecked_policy,
        orjson.dumps(s.blocked_words), rk.MODERATION_TTL_SECONDS,
    ]  # fmt: skip
    for m in await _mutes(conn, room_id):
        until = 0 if m.muted_until is None else int(m.muted_until.timestamp() * 1000)
        args += [author_key(m.kind, m.id), until]
    keys = [rk.room_moderation(room_id), rk.room_mutes(room_id)]
    await redis.eval(LOAD_SCRIPT, 2, *keys, *args)


async def rebuild(pool: asyncpg.Pool, redis: Redis, room_id: int) -> None:
    """Put the room's rules back into Redis from PostgreSQL (the copy was missing).

    Raises NotFound (``room_not_found``) for a room that does not exist."""
    async with pool.acquire() as conn:
        host_id = await conn.fetchval("SELECT host_id FROM live_rooms WHERE id = $1", room_id)
        if host_id is None:
            raise NotFound("no such room", code="room_not_found")
        await _write_copy(conn, redis, room_id, host_id)


async def get_settings(pool: asyncpg.Pool, host_id: int, room_id: int) -> Settings:
    """The host's room's rules. Raises NotFound for another host's room."""
    async with pool.acquire() as conn:
        await owned_room(conn, host_id, room_id)
        return await _settings(conn, room_id)


async def update_settings(
    pool: asyncpg.Pool,
    redis: Redis,
    host_id: int,
    room_id: int,
    *,
    room_muted: bool | None = None,
    unchecked_policy: str | None = None,
    blocked_words: list[str] | None = None,
) -> Settings:
    """Change some of the rules (None = unchanged); the copy in Redis is replaced before the
    commit. ``blocked_words`` replaces the list (trimmed, duplicates by :func:`normalize`
    dropped, at most :data:`MAX_WORDS`). Raises NotFound for another host's room."""
    words = None
    if blocked_words is not None:
        seen: dict[str, str] = {}
        for w in blocked_words:
            w = " ".join(w.split())
            if w and normalize(w) not in seen:
                seen[normalize(w)] = w
        words = list(seen.values())[:MAX_WORDS]
    async with pool.acquire() as conn, conn.transaction():
        await owned_room(conn, host_id, room_id, lock=True)
        await conn.execute(
            """INSERT INTO room_moderation AS m (room_id, room_muted, unchecked_policy,
                                                 blocked_words, version)
               VALUES ($1, coalesce($2::boolean, false), coalesce($3::text, 'show'),
                       coalesce($4::text[], '{}'), 1)
               ON CONFLICT (room_id) DO UPDATE SET
                 room_muted = coalesce($2::boolean, m.room_muted),
                 unchecked_policy = coalesce($3::text, m.unchecked_policy),
                 blocked_words = coalesce($4::text[], m.blocked_words),
                 version = m.version + 1, updated_at = now()""",
            room_id,
            room_muted,
            unchecked_policy,
            words,
        )
        await _write_copy(conn, redis, room_id, host_id)
        return await _settings(conn, room_id)


async def _bump(conn: asyncpg.Connection, room_id: int) -> None:
    await conn.execute(
        """INSERT INTO room_moderation AS m (room_id, version) VALUES ($1, 1)
           ON CONFLICT (room_id) DO UPDATE SET version = m.version + 1, updated_at = now()""",
        room_id,
    )


async def mute(
    pool: asyncpg.Pool,
    redis: Redis,
    host_id: int,
    room_id: int,
    kind: str,
    author_id: str,
    seconds: int | None,
) -> Mute:
    """Mute an author in the host's room for ``seconds`` (None: until unmuted); muting again
    replaces the end. Raises NotFound for another host's room."""
    key = author_key(kind, author_id)
    async with pool.acquire() as conn, conn.transaction():
        await owned_room(conn, host_id, room_id, lock=True)
        row = await conn.fetchrow(
            """INSERT INTO room_mutes (room_id, author, muted_until)
               VALUES ($1, $2, now() + make_interval(secs => $3::int))
               ON CONFLICT (room_id, author) DO UPDATE
                 SET muted_until = EXCLUDED.muted_until, created_at = now()
               RETURNING muted_until, created_at""",
            room_id,
            key,
            seconds,
        )
        await _bump(conn, room_id)
        await _write_copy(conn, redis, room_id, host_id)
    return Mute(kind, author_id, row["muted_until"], row["created_at"])


async def unmute(
    pool: asyncpg.Pool, redis: Redis, host_id: int, room_id: int, kind: str, author_id: str
) -> bool:
    """Lift a mute; False when the author was not muted. Raises NotFound (another's room)."""
    async with pool.acquire() as conn, conn.transaction():
        await owned_room(conn, host_id, room_id, lock=True)
        done = await conn.fetchval(
            """DELETE FROM room_mutes WHERE room_id = $1 AND author = $2
               RETURNING muted_until IS NULL OR muted_until > now()""",
            room_id,
            author_key(kind, author_id),
        )
        await _bump(conn, room_id)
        await _write_copy(conn, redis, room_id, host_id)
    return bool(done)


async def list_mutes(pool: asyncpg.Pool, host_id: int, room_id: int) -> list[Mute]:
    """The authors muted in the host's room now, oldest mute first."""
    async with pool.acquire() as conn:
        await owned_room(conn, host_id, room_id)
        return await _mutes(conn, room_id)
